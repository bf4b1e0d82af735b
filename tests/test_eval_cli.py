"""``resnetlab eval``: the metrics files of a checkpoint, against scikit-learn on its outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix

from eval_support import VAL_FRACTION, run_main, single_line, trained_run
from resnetlab.data import load_dataset
from resnetlab.evaluation.data import load_eval_split
from resnetlab.train.weights import model_from_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.getbasetemp())


def test_default_eval_writes_metrics_beside_the_run(run, capsys):
    code, out, err = run_main(["eval", str(run)], capsys)
    assert code == 0, err
    folder = run / "eval" / "last-digits-test"
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion.png",
        "confusion.txt",
        "eval.json",
    ]
    record = json.loads((folder / "eval.json").read_text())

    model, ckpt = model_from_checkpoint(run)
    ds = load_dataset("digits", "test", image_size=16)
    mean, std = ckpt["data"]["mean"][0], ckpt["data"]["std"][0]
    with torch.no_grad():
        logits = model((ds.images.float() / 255 - mean) / std)  # (360, 10)
    y, pred = ds.labels.numpy(), logits.argmax(1).numpy()
    assert (record["samples"], record["split"], record["views"]) == (360, "test", 1)
    assert record["iteration"] == ckpt["progress"]["iteration"]
    assert record["confusion"] == confusion_matrix(y, pred, labels=range(10)).tolist()
    assert record["top1_error"] == pytest.approx(np.mean(pred != y), abs=1e-12)
    top5 = logits.topk(5, dim=1).indices.numpy()
    assert record["top5_error"] == pytest.approx(1 - np.mean((top5 == y[:, None]).any(1)))
    for cls, acc in record["per_class_accuracy"].items():
        c = int(cls)
        assert acc == pytest.approx(np.mean(pred[y == c] == c), abs=1e-12)
    assert f"top-1 error  {100 * record['top1_error']:.2f}%" in out
    assert (folder / "confusion.txt").read_text() in out  # 10 classes: shown on the terminal
    with Image.open(folder / "confusion.png") as img:
        assert img.format == "PNG"


def test_val_split_json_and_out(run, tmp_path, capsys):
    out_dir = tmp_path / "val-eval"
    code, out, _ = run_main(
        ["eval", str(run / "checkpoints" / "best.pt"), "--split", "val", "--out", str(out_dir),
         "--json", "--batch-size", "50"],
        capsys,
    )  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    assert printed == json.loads((out_dir / "eval.json").read_text())
    assert printed["samples"] == round(1437 * VAL_FRACTION)
    assert printed["split"] == "val" and printed["checkpoint"].endswith("best.pt")


@pytest.fixture
def other_classes(tmp_path):
    """An image folder with classes other than the digits."""
    _write_images(tmp_path / "imgs", ("cat", "dog"), per_class=5)
    return tmp_path / "imgs"


def _write_images(root, classes, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{k}.png")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--split", "dev"], "argument --split: invalid choice: 'dev'"),
        (["--batch-size", "0"], "argument --batch-size: must be at least 1; got 0"),
        (["--ten-crop"], "--ten-crop needs folder data (--data folder)"),
        (["--data", "folder"], "--data folder needs --data-dir PATH"),
        (["--data", "mnist"], "argument --data: invalid choice: 'mnist'"),
        (["--model", "resnet20"], "checkpoint of model 'cifar_resnet', not 'resnet20'"),
        (["--device", "cuda:x"], "not a device name"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(run, capsys, args, message):
    code, out, err = run_main(["eval", str(run), *args], capsys)
    assert code == 2 and out == ""
    assert message in single_line(err)


def test_data_with_other_classes_is_refused(run, other_classes, capsys):
    args = ["eval", str(run), "--data", "folder", "--data-dir", str(other_classes)]
    code, _, err = run_main(args, capsys)
    assert code == 2
    assert "2 classes differ from the checkpoint's 10" in single_line(err)


def test_missing_checkpoint_and_weights_of_another_model(run, tmp_path, capsys):
    code, _, err = run_main(["eval", str(tmp_path / "x.pt")], capsys)
    assert code == 2 and "x.pt: checkpoint not found" in single_line(err)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["model"].update(name="resnet20", overrides={})  # claims another architecture
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    code, _, err = run_main(["eval", str(other)], capsys)
    assert code == 2 and "weights do not fit the model" in single_line(err)


def test_an_unwritable_out_is_one_line(run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    code, _, err = run_main(["eval", str(run), "--out", str(blocker / "sub")], capsys)
    assert code == 2 and f"--out {blocker / 'sub'}: cannot write" in single_line(err)


FLAT_RUN_SPLITS = ("test", "train")  # RELIABILITY.md row I12: both evaluated after training


def test_a_run_on_a_flat_folder_is_never_evaluated_on_its_training_images(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "imgs"
    _write_images(root, ("ant", "bee", "cow"), per_class=5)
    train = ["train", "--model", "cifar_resnet", "--set", "model.overrides.depth=8",
             "--data", "folder", "--data-dir", str(root), "--image-size", "16",
             "--iterations", "2", "--batch-size", "4", "--set", "data.workers=0",
             "--set", "eval_train_at_end=false", "--out", str(tmp_path / "run")]  # fmt: skip
    code, out, err = run_main(train, capsys)
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"{root}: no test/ or val/ folder: held out 20% of each class as the test split "
        "(data.test_fraction): 12 train, 3 test images"
    )
    counts = {}
    for split in FLAT_RUN_SPLITS:
        argv = ["eval", str(tmp_path / "run"), "--split", split, "--json", "--workers", "0"]
        code, out, err = run_main([*argv, "--out", str(tmp_path / f"eval-{split}")], capsys)
        assert code == 0, err
        counts[split] = json.loads(out)["samples"]
    assert counts == {"test": 3, "train": 12}  # one image of each class held out
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    seen = {
        split: {p for p, _ in load_eval_split(ckpt["data"], ckpt["config"], split).samples}
        for split in ("test", "train")
    }
    assert len(seen["test"]) == 3 and not seen["test"] & seen["train"]
