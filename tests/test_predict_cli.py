"""``resnetlab predict``: top-k classes of image files, checked against the model run by hand."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from eval_support import run_main, single_line, trained_run
from resnetlab.data import load_dataset
from resnetlab.train.weights import model_from_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    """Three test digits at the model's 16x16 as grayscale PNG files, and their uint8 pixels."""
    folder = tmp_path_factory.mktemp("digits")
    ds = load_dataset("digits", "test", image_size=16)
    files, pixels = [], []
    for i in range(3):
        path = folder / f"digit{i}.png"
        Image.fromarray(ds.images[i, 0].numpy(), "L").save(path)
        files.append(str(path))
        pixels.append(ds.images[i])
    return files, torch.stack(pixels)  # (3, 1, 16, 16) uint8


def expected_probabilities(run, pixels: torch.Tensor) -> torch.Tensor:
    model, ckpt = model_from_checkpoint(run)
    mean, std = ckpt["data"]["mean"][0], ckpt["data"]["std"][0]
    with torch.no_grad():
        return torch.softmax(model((pixels.float() / 255 - mean) / std), dim=1)  # (N, 10)


def test_json_gives_the_model_probabilities(run, digit_files, capsys):
    files, pixels = digit_files
    code, out, err = run_main(["predict", str(run), *files, "--top-k", "3", "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    assert record["model"] == "cifar_resnet"
    assert record["checkpoint"] == str(run / "checkpoints" / "last.pt")
    probs = expected_probabilities(run, pixels)
    assert [p["image"] for p in record["predictions"]] == files
    for prediction, row in zip(record["predictions"], probs, strict=True):
        values, indices = row.topk(3)
        top = prediction["top"]
        assert [t["index"] for t in top] == indices.tolist()
        assert [t["class"] for t in top] == [str(i) for i in indices.tolist()]
        assert [t["probability"] for t in top] == pytest.approx(values.tolist(), abs=1e-5)


def test_text_lists_top_k_capped_at_the_number_of_classes(run, digit_files, capsys):
    files, pixels = digit_files
    code, out, _ = run_main(["predict", str(run), files[0], "--top-k", "50"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == files[0] and len(lines) == 1 + 10
    probs = expected_probabilities(run, pixels[:1])[0]
    order = probs.argsort(descending=True).tolist()
    for rank, (line, cls) in enumerate(zip(lines[1:], order, strict=True), start=1):
        fields = line.split()
        assert fields[0] == f"{rank}." and fields[1] == str(cls)
        assert float(fields[2]) == pytest.approx(probs[cls].item(), abs=6e-5)


def test_default_is_top_5(run, digit_files, capsys):
    code, out, _ = run_main(["predict", str(run), *digit_files[0][:2]], capsys)
    assert code == 0 and len(out.splitlines()) == 2 * (1 + 5)


def test_a_file_that_is_not_an_image_is_one_line(run, digit_files, tmp_path, capsys):
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are not pixels\n")
    code, out, err = run_main(["predict", str(run), str(notes), "--json"], capsys)
    assert code == 2 and out == ""
    line = single_line(err)
    assert str(notes) in line and "cannot decode image" in line
    code, _, err = run_main(["predict", str(run), str(tmp_path / "gone.png")], capsys)
    assert code == 2 and "gone.png: image file not found" in single_line(err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--top-k", "0"], "--top-k must be at least 1; got 0"),
        (["--top-k", "many"], "argument --top-k: invalid int value: 'many'"),
        (["--model", "resnet56"], "checkpoint of model 'cifar_resnet', not 'resnet56'"),
        (["--device", "cuda:x"], "--device 'cuda:x': not a device name"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(run, digit_files, capsys, args, message):
    code, out, err = run_main(["predict", str(run), digit_files[0][0], *args], capsys)
    assert code == 2 and out == ""
    assert message in single_line(err)


def test_missing_checkpoint_and_weights_of_another_model(run, digit_files, tmp_path, capsys):
    code, _, err = run_main(["predict", str(tmp_path / "x.pt"), digit_files[0][0]], capsys)
    assert code == 2 and "x.pt: checkpoint not found" in single_line(err)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["model"]["overrides"] = {"depth": 14}  # a deeper net than the weights belong to
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    code, _, err = run_main(["predict", str(other), digit_files[0][0]], capsys)
    assert code == 2 and "weights do not fit the model" in single_line(err)
