"""Damaged files are named, never answered with: digests of every checkpoint and weight file
resnetlab writes, value checks on every state loaded, and resuming past a damaged last.pt."""

from __future__ import annotations

import io
import shutil
import zipfile

import pytest
import torch

from reliability_support import tiny_checkpoint
from resnetlab.cli import main
from resnetlab.errors import CheckpointError
from resnetlab.models import build_model
from resnetlab.train.checkpoint import load_checkpoint, seal
from resnetlab.train.integrity import check_state_values, tensor_digest
from resnetlab.train.weights import (
    WEIGHTS_FORMAT,
    load_weights,
    model_from_checkpoint,
    save_weights,
)
from train_runs import TINY


def _tiny():
    torch.manual_seed(0)
    return build_model("cifar_resnet", 10, 1, {"depth": 8})


def _flip_middle(path, count=2000):
    """XOR ``count`` bytes in the middle of a file with 0xFF (a rotted or torn region)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - count // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_tensor_bytes(path, count=2000):
    """XOR ``count`` bytes in the middle of the largest tensor record of a torch zip file: the
    damage that unpickles cleanly and changes only numbers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    body = info.header_offset + 30 + name_len + extra_len
    start = body + info.file_size // 2 - min(count, info.file_size) // 2
    for i in range(start, start + min(count, info.file_size)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _one_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("resnetlab: error: "), err
    return err


# ----------------------------------------------------------------------------------------------
# The digest
# ----------------------------------------------------------------------------------------------
def test_the_digest_sees_every_bit_dtype_shape_and_place():
    state = {"a": torch.arange(6, dtype=torch.float32), "b": [torch.zeros(2, 3)]}
    base = tensor_digest(state)
    assert tensor_digest({"b": [torch.zeros(2, 3)], "a": torch.arange(6.0)}) == base  # key order
    flipped = state["a"].clone()
    flipped.view(torch.int32)[3] ^= 1  # one bit of one element
    assert tensor_digest({**state, "a": flipped}) != base
    assert tensor_digest({**state, "a": state["a"].double()}) != base  # dtype
    assert tensor_digest({**state, "a": state["a"].reshape(2, 3)}) != base  # shape
    assert tensor_digest({"c": state["a"], "b": state["b"]}) != base  # place
    assert tensor_digest({**state, "note": "not a tensor"}) == base  # only tensors count


def test_a_checkpoint_with_bytes_flipped_in_its_middle_is_refused(tmp_path, capsys):
    path = tmp_path / "last.pt"
    torch.save(tiny_checkpoint(), path)
    intact = path.read_bytes()
    load_checkpoint(path)  # intact: loads
    _flip_tensor_bytes(path)
    with pytest.raises(CheckpointError, match=r"last\.pt: damaged file: its tensor data does not"):
        load_checkpoint(path)
    path.write_bytes(intact)
    _flip_middle(path)  # wherever the middle falls (structure or data), the file is refused
    with pytest.raises(CheckpointError, match=r"last\.pt: (damaged|corrupt)"):
        load_checkpoint(path)
    image = tmp_path / "seven.png"
    from PIL import Image

    Image.new("L", (8, 8), 128).save(image)
    err = _one_error(capsys, ["predict", str(path), str(image)])
    assert "last.pt" in err


def test_a_checkpoint_without_its_digest_is_refused(tmp_path):
    ckpt = tiny_checkpoint()
    del ckpt["digest"]
    torch.save(ckpt, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"c\.pt: damaged file: no digest"):
        load_checkpoint(tmp_path / "c.pt")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weight_files_carry_a_digest_that_every_load_verifies(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    save_weights(_tiny(), path)
    if suffix == ".pt":
        wrapped = torch.load(path, weights_only=True)
        assert wrapped["format"] == WEIGHTS_FORMAT
        assert wrapped["digest"]["sha256"] == tensor_digest(wrapped["state_dict"])
    load_weights(_tiny(), path)
    if suffix == ".pt":
        _flip_tensor_bytes(path, count=1)
    else:  # a safetensors file ends with its last tensor's data
        data = bytearray(path.read_bytes())
        data[-64] ^= 0x01
        path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the digest"):
        load_weights(_tiny(), path)


def test_weight_files_of_other_programs_load_without_a_digest(tmp_path):
    model, other = _tiny(), build_model("cifar_resnet", 10, 1, {"depth": 8})
    torch.save(model.state_dict(), tmp_path / "plain.pt")  # torchvision's layout
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    for name in ("plain.pt", "wrapped.pth"):
        load_weights(other, tmp_path / name)
        for key, value in model.state_dict().items():
            assert torch.equal(value, other.state_dict()[key]), (name, key)


# ----------------------------------------------------------------------------------------------
# Values a model cannot take
# ----------------------------------------------------------------------------------------------
BAD_VALUES = {
    "int64 kernel": ("conv1.weight", lambda t: t.long(), "conv1.weight is int64, not a floating"),
    "complex kernel": ("conv1.weight", lambda t: t.to(torch.complex64), "is complex64, not a"),
    "NaN weight": ("fc.weight", lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), "NaN"),
    "infinite bias": ("fc.bias", lambda t: t + float("inf"), "NaN or infinite"),
    "negative variance": ("bn1.running_var", lambda t: -t, "negative values"),
    "float step count": ("bn1.num_batches_tracked", lambda t: t.float(), "not an integer"),
}


BAD_VALUE_READERS = 3  # model_from_checkpoint, load_weights, resnetlab export
NORMALISATION_CASES = [
    ("std", [0.0], r"data\.std must be finite and above 0; got \[0\.0\]"),
    ("std", [float("inf")], r"data\.std must be finite and above 0"),
    ("mean", [float("nan")], r"data\.mean must be finite; got \[nan\]"),
    ("classes", ["0", "1"], "2 class names for a model of 10 outputs"),
]
# RELIABILITY.md: a checkpoint flipped in its tensor data and in its middle, one without its
# digest, a .pt and a .safetensors weight file flipped, a resume past two damaged checkpoints
# and one with all damaged.
DAMAGE_CASES = 7
VALUE_CASES = len(BAD_VALUES) * BAD_VALUE_READERS + len(NORMALISATION_CASES)


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_a_state_with_values_a_model_cannot_take_is_refused(tmp_path, case, capsys):
    key, change, message = BAD_VALUES[case]
    ckpt = tiny_checkpoint()
    ckpt["state"]["model"][key] = change(ckpt["state"]["model"][key])
    path = tmp_path / "c.pt"
    torch.save(seal(ckpt), path)  # a hand-edited file, sealed again: the digest cannot help
    with pytest.raises(CheckpointError, match=message):
        model_from_checkpoint(path)
    plain = tmp_path / "w.pt"
    torch.save(ckpt["state"]["model"], plain)
    with pytest.raises(CheckpointError, match=message):
        load_weights(_tiny(), plain)
    err = _one_error(
        capsys, ["export", str(path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    )
    assert key in err and not (tmp_path / "m.onnx").exists()


def test_check_state_values_accepts_what_a_model_holds():
    model = _tiny()
    check_state_values(model.state_dict(), model.state_dict(), "x")  # no error
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    check_state_values(model.state_dict(), half, "x")  # another floating dtype is converted


@pytest.mark.parametrize(("field", "value", "message"), NORMALISATION_CASES)
def test_bad_normalisation_and_class_lists_are_refused_at_load(tmp_path, field, value, message):
    ckpt = tiny_checkpoint()
    ckpt["data"][field] = value
    torch.save(ckpt, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c.pt")


# ----------------------------------------------------------------------------------------------
# Resuming past a damaged last.pt
# ----------------------------------------------------------------------------------------------
RUN = [*TINY, "--iterations", "30", "--batch-size", "32", "--set", "checkpoint_every=10",
       "--set", "keep_last=3", "--set", "eval_every=30", "--set", "log_every=10"]  # fmt: skip


def test_resume_passes_over_a_damaged_last_checkpoint_to_the_newest_intact_one(tmp_path):
    straight, damaged = tmp_path / "straight", tmp_path / "damaged"
    assert main(["train", *RUN, "--out", str(straight)]) == 0
    shutil.copytree(straight, damaged)  # the copy's names are separate files, not links
    ckpts = damaged / "checkpoints"
    (damaged / "summary.json").unlink()
    for name in ("last.pt", "step-00000030.pt"):  # the newest two rotted; step-20 is intact
        _flip_tensor_bytes(ckpts / name)
    with pytest.warns(UserWarning) as warned:  # the CLI prints each as one line on stderr
        assert main(["train", "--resume", str(damaged)]) == 0
    said = [str(w.message) for w in warned]
    assert any(m.startswith(f"{ckpts / 'last.pt'}: damaged file") for m in said), said
    assert any(m.startswith(f"{ckpts / 'step-00000030.pt'}: damaged file") for m in said)
    assert f"resuming from {ckpts / 'step-00000020.pt'} (iteration 20), the newest" in said[-1]
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, damaged))
    assert b["progress"]["iteration"] == 30
    for key, tensor in a["state"]["model"].items():  # deterministic: the same weights
        assert torch.equal(tensor, b["state"]["model"][key]), key


def test_resume_with_every_checkpoint_damaged_names_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    seen = set()  # last.pt, best.pt and the newest step file are one file under three names
    for path in sorted((out / "checkpoints").glob("*.pt")):
        if path.stat().st_ino not in seen:
            seen.add(path.stat().st_ino)
            _flip_tensor_bytes(path)
    err = _one_error(capsys, ["train", "--resume", str(out)])
    assert f"no intact checkpoint in {out / 'checkpoints'}" in err
