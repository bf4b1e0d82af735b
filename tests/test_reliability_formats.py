"""Files that are not checkpoints, given where one is read: one line saying what the file is.

A bare pickle, a legacy torch pickle of something else, a TorchScript export, an ONNX export, a
safetensors weight file and a resnetlab weight file, given to ``predict``, ``eval``, ``export``,
``train --resume`` (as the run's ``last.pt``) and ``train --weights``: exit code 2, one
``resnetlab: error: ...`` line naming the file and what it is, and none of torch's warnings
(``UserWarning: ... TorchScript archive ...``, ``... pickle protocol 4 ...``).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from reliability_support import (
    TRAIN_FAST,
    cli_in_process,
    make_run,
    one_error_line,
    tiny_checkpoint,
)

# name -> (file suffix, the words the error must hold)
FILES = {
    "bare pickle": (".pt", "a plain pickle, not a torch file"),
    "legacy torch pickle": (".pt", "not a resnetlab checkpoint"),
    "torchscript": (".pt", "a TorchScript export (torch.jit.save), not a checkpoint"),
    "onnx": (".onnx", "an ONNX export, not a checkpoint"),
    "safetensors": (".safetensors", "a safetensors"),  # as last.pt: "a safetensors file, not ..."
    "resnetlab weights": (".pt", "not a resnetlab checkpoint"),
}
READERS = ("predict", "eval", "export", "train --resume", "train --weights")
# --weights takes weight files: there the two weight formats are valid, and a legacy pickle of
# other tensors is a state dict that does not fit.
WEIGHTS_EXPECT = {"legacy torch pickle": "weights do not fit the model"}
# predict, eval and export also read weight files, given --model and --data: without them, a
# file of tensors is taken for one and the line says what to add.
AS_WEIGHTS = ("legacy torch pickle", "safetensors", "resnetlab weights")
AS_WEIGHTS_EXPECT = "a weight file, not a checkpoint: give --model NAME"
CASES_LIST = [
    (f, r)
    for f in FILES
    for r in READERS
    if not (r == "train --weights" and f in ("safetensors", "resnetlab weights"))
]
CASES = len(CASES_LIST)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from resnetlab.export import export_onnx, export_torchscript
    from resnetlab.models import build_model
    from resnetlab.train.weights import save_weights

    folder = tmp_path_factory.mktemp("formats")
    run = make_run(folder / "run")
    model = build_model("cifar_resnet", 10, 1, {"depth": 8})
    example = torch.randn(1, 1, 8, 8)
    with open(folder / "bare pickle.pt", "wb") as f:
        pickle.dump({"state_dict": {"w": [1.0, 2.0]}}, f, protocol=4)
    torch.save({"w": torch.zeros(2)}, folder / "legacy torch pickle.pt",
               _use_new_zipfile_serialization=False)  # fmt: skip
    export_torchscript(model, example, folder / "torchscript.pt")
    export_onnx(model, example, folder / "onnx.onnx")
    save_weights(model, folder / "safetensors.safetensors")
    save_weights(model, folder / "resnetlab weights.pt")
    Image.new("L", (8, 8), 128).save(folder / "digit.png")
    torch.save(tiny_checkpoint(), folder / "valid.pt")
    return folder, run


def _argv(reader: str, path: Path, folder: Path, run: Path, tmp_path: Path) -> list[str]:
    if reader == "predict":
        return ["predict", str(path), str(folder / "digit.png")]
    if reader == "eval":
        return ["eval", str(path), "--out", str(tmp_path / "eval")]
    if reader == "export":
        return ["export", str(path), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]
    if reader == "train --weights":
        return ["train", *TRAIN_FAST, "--iterations", "1", "--weights", str(path),
                "--out", str(tmp_path / "out")]  # fmt: skip
    copy = Path(shutil.copytree(run, tmp_path / "resumed"))
    for step in (copy / "checkpoints").glob("*.pt"):
        step.unlink()  # no intact checkpoint to fall back to
    shutil.copy(path, copy / "checkpoints" / "last.pt")
    return ["train", "--resume", str(copy)]


@pytest.mark.parametrize(("kind", "reader"), CASES_LIST, ids=[" / ".join(c) for c in CASES_LIST])
def test_a_file_of_another_kind_is_named_in_one_line(files, tmp_path, kind, reader, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    folder, run = files
    suffix, words = FILES[kind]
    path = folder / f"{kind}{suffix}"
    if reader == "train --weights":
        words = WEIGHTS_EXPECT.get(kind, words.replace(", not a checkpoint", ""))
    elif reader in ("predict", "eval", "export") and kind in AS_WEIGHTS:
        words = AS_WEIGHTS_EXPECT
    code, err = cli_in_process(_argv(reader, path, folder, run, tmp_path))
    line = one_error_line(err)  # torch's warnings would be lines of their own
    assert code == 2, err
    assert words in line, line
    assert path.name in line or "last.pt" in line, line


def test_a_valid_checkpoint_still_loads_without_a_warning(files):
    """The control: the same readers accept a real checkpoint, quietly."""
    folder, _ = files
    code, err = cli_in_process(["predict", str(folder / "valid.pt"), str(folder / "digit.png")])
    assert code == 0 and err == "", err


# A FIFO where a command reads a file would block its read until some other process writes:
# every reader of a config, checkpoint or weight file refuses it from stat, before opening.
FIFO_READERS = {
    "train --config": lambda fifo, tmp: ["train", "--config", str(fifo), "--out", str(tmp / "o")],
    "train --weights": lambda fifo, tmp: [
        "train",
        *TRAIN_FAST,
        "--iterations",
        "1",
        "--weights",
        str(fifo),
        "--out",
        str(tmp / "o"),
    ],
    "predict": lambda fifo, tmp: ["predict", str(fifo), str(tmp / "x.png")],
    "eval": lambda fifo, tmp: ["eval", str(fifo), "--out", str(tmp / "eval")],
    "export": lambda fifo, tmp: ["export", str(fifo), "--format", "onnx", "--out", str(tmp / "m")],
}
FIFO_CASES = len(FIFO_READERS)


@pytest.mark.parametrize("reader", FIFO_READERS)
def test_a_fifo_given_as_a_file_to_read_is_refused_without_blocking(tmp_path, reader):
    import os

    suffix = ".yaml" if reader == "train --config" else ".pt"
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    code, err = cli_in_process(FIFO_READERS[reader](fifo, tmp_path), timeout=30)
    line = one_error_line(err)
    assert code == 2, err
    assert f"{fifo}: not a regular file (a FIFO (named pipe))" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == [fifo.name]  # nothing written
