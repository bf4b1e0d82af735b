"""``resnetlab export``: checked ONNX and TorchScript files, servable with the JSON beside them."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from eval_support import run_main, single_line, trained_run
from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.train.weights import model_from_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def onnx_export(run):
    """``resnetlab export RUN --format onnx``: (the file, what the command printed). The run's
    ``checkpoints/`` is the run's alone: the default is ``RUN/export/``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(run), "--format", "onnx"]) == 0
    return run / "export" / "last.onnx", out.getvalue()


def test_onnx_goes_to_the_runs_export_folder_with_its_constants(run, onnx_export):
    path, printed = onnx_export
    sidecar = path.with_name("last.onnx.json")
    assert path.is_file() and sidecar.is_file()
    assert f"wrote {path}" in printed and str(sidecar) in printed
    record = json.loads(sidecar.read_text())
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    data = ckpt["data"]
    assert record["format"] == "onnx" and record["file"] == "last.onnx"
    assert record["classes"] == data["classes"] == [str(d) for d in range(10)]
    assert record["preprocess"]["mean"] == data["mean"]
    assert record["preprocess"]["std"] == data["std"]
    assert record["preprocess"]["center_crop"] == [16, 16]
    assert record["preprocess"]["color"] == "L"
    assert record["input"]["shape"] == ["batch", 1, 16, 16]
    assert record["input"]["layout"] == "NCHW" and record["input"]["dtype"] == "float32"
    assert record["model"] == ckpt["model"]
    assert 0 <= record["check"]["max_abs_diff"] < 1e-4 < record["check"]["max_abs_logit"]
    assert f"{record['check']['max_abs_diff']:.3g}" in printed


def test_a_server_needs_only_the_onnx_file_and_its_json(run, onnx_export):
    """Preprocess from the JSON alone, run in ONNX Runtime, get PyTorch's probabilities."""
    path, _ = onnx_export
    meta = json.loads(path.with_name("last.onnx.json").read_text())
    digits = load_dataset("digits", "test", image_size=16)
    images = [Image.fromarray(digits.images[i, 0].numpy()).resize((24, 20)) for i in range(5)]

    def preprocess(img: Image.Image) -> np.ndarray:
        p = meta["preprocess"]
        w, h = img.size
        s = p["resize_shorter_side"] / min(w, h)
        img = img.convert("RGB").resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
        ch, cw = p["center_crop"]
        left, top = (img.size[0] - cw) // 2, (img.size[1] - ch) // 2
        img = img.crop((left, top, left + cw, top + ch)).convert(p["color"])
        x = np.asarray(img, np.float32).reshape(ch, cw, -1) / 255.0
        x = (x - np.array(p["mean"], np.float32)) / np.array(p["std"], np.float32)
        return x.transpose(2, 0, 1)  # (C, H, W)

    batch = np.stack([preprocess(img) for img in images])  # (5, 1, 16, 16)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run([meta["output"]["name"]], {meta["input"]["name"]: batch})

    model, _ = model_from_checkpoint(run)
    from resnetlab.evaluation.preprocess import Preprocess

    prep = Preprocess.for_data(torch.load(run / "checkpoints/last.pt", weights_only=True)["data"])
    with torch.no_grad():
        expected = model(torch.stack([prep(img) for img in images]))
    np.testing.assert_allclose(logits, expected.numpy(), rtol=0, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_with_out_and_json(run, tmp_path, capsys):
    out = tmp_path / "sub" / "model.pt"
    code, printed, err = run_main(
        ["export", str(run / "checkpoints" / "best.pt"), "--format", "torchscript",
         "--out", str(out), "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(printed)
    assert record == json.loads((tmp_path / "sub" / "model.pt.json").read_text())
    assert record["format"] == "torchscript" and record["check"]["max_abs_diff"] < 1e-4
    model, _ = model_from_checkpoint(run / "checkpoints" / "best.pt")
    loaded = torch.jit.load(str(out))
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max().item() < 1e-4


def test_a_failed_check_exits_1_and_writes_nothing(run, tmp_path, capsys):
    out = tmp_path / "strict.onnx"
    code, _, err = run_main(
        ["export", str(run), "--format", "onnx", "--out", str(out), "--tolerance", "1e-30"],
        capsys,
    )
    assert code == 1
    line = single_line(err)
    assert "differs from PyTorch by up to" in line and "nothing was written" in line
    assert "(tolerance 1e-30; logits up to" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "onnx", "--bogus"], "unrecognized arguments: --bogus"),
        (["--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
        ([], "the following arguments are required: --format"),
        (["--format", "onnx", "--tolerance", "-1"], "must be a positive number"),
        (["--format", "onnx", "--model", "resnet20"], "checkpoint of model 'cifar_resnet'"),
        (["--format", "onnx", "--out", "m.pt"], "ONNX files, and only they, end in .onnx"),
        (["--format", "torchscript", "--out", "m.onnx"], "ONNX files, and only they"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(run, capsys, args, message):
    code, out, err = run_main(["export", str(run), *args], capsys)
    assert code == 2
    assert message in single_line(err)
    assert out == ""


def test_an_unwritable_out_is_one_line(run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    out = blocker / "m.pt"
    code, _, err = run_main(
        ["export", str(run), "--format", "torchscript", "--out", str(out)], capsys
    )
    assert code == 2 and f"--out {out}: cannot write" in single_line(err)


def test_missing_or_foreign_checkpoints_are_one_line(run, tmp_path, capsys):
    not_ckpt = tmp_path / "notes.pt"
    not_ckpt.write_text("hello")
    for path, message in [
        (tmp_path / "none.pt", "checkpoint not found"),
        (not_ckpt, "corrupt or not a torch file"),
        (tmp_path, "run folder has no checkpoints/last.pt"),
    ]:
        code, _, err = run_main(["export", str(path), "--format", "onnx"], capsys)
        assert code == 2 and message in single_line(err)
