"""Checkpoints and weight files crafted to run code are refused, and the code never runs.

Every payload would create a marker file when unpickled. The control test unpickles each one the
unsafe way and sees the marker appear (so the payloads are live); the real tests hand the same
files to every loader the library and the CLI have and check both the error and that the marker
does not exist afterwards.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from reliability_support import one_error_line, require_command, tiny_checkpoint
from resnetlab.cli import main
from resnetlab.errors import CheckpointError
from resnetlab.models import build_model
from resnetlab.train.checkpoint import FORMAT, load_checkpoint
from resnetlab.train.weights import load_weights, model_from_checkpoint


class _Call:
    """Pickles as ``fn(*args)``: what a malicious file makes the unpickler call."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _payload(kind: str, marker: Path) -> _Call:
    m = str(marker)
    return {
        "os.system": lambda: _Call(os.system, f"touch '{m}'"),
        "builtins.exec": lambda: _Call(builtins.exec, f"open({m!r}, 'w').close()"),
        "builtins.eval": lambda: _Call(builtins.eval, f"__import__('pathlib').Path({m!r}).touch()"),
        "subprocess.call": lambda: _Call(subprocess.call, ["touch", m]),
        "Path.touch": lambda: _Call(Path.touch, Path(m)),
    }[kind]()


PAYLOADS = ["os.system", "builtins.exec", "builtins.eval", "subprocess.call", "Path.touch"]
# zip: torch.save's format; legacy: torch's pre-1.6 format; pickle: a bare pickle stream;
# nested: a complete, valid resnetlab checkpoint with the payload hidden in its config.
CONTAINERS = ["zip", "legacy", "pickle", "nested"]
LOADERS = ["load_checkpoint", "load_weights", "model_from_checkpoint"]
# Hand-written protocol-0 opcodes (no Python class involved): GLOBAL os.system, REDUCE.
OPCODES = b"cos\nsystem\n(S'touch %s'\ntR."
CLI_COMMANDS = ["eval", "predict", "export", "train --resume"]
CASES = len(PAYLOADS) * len(CONTAINERS) * len(LOADERS) + len(LOADERS) + len(CLI_COMMANDS)


def _tiny():
    return build_model("cifar_resnet", 10, 1, {"depth": 8})


def _write(path: Path, container: str, payload: _Call) -> Path:
    if container == "pickle":
        path.write_bytes(pickle.dumps(payload))
    elif container == "nested":
        ckpt = tiny_checkpoint()
        ckpt["config"] = {"note": payload}
        torch.save(ckpt, path)
    else:
        buf = io.BytesIO()
        torch.save(
            {"format": FORMAT, "x": payload}, buf, _use_new_zipfile_serialization=container == "zip"
        )
        path.write_bytes(buf.getvalue())
    return path


def _load(loader: str, path: Path) -> None:
    with warnings.catch_warnings():  # torch warns about the pickle protocol of bare streams
        warnings.simplefilter("ignore", UserWarning)
        if loader == "load_checkpoint":
            load_checkpoint(path)
        elif loader == "load_weights":
            load_weights(_tiny(), path)
        else:
            model_from_checkpoint(path)


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("kind", PAYLOADS)
def test_the_payloads_are_live_when_unpickled_unsafely(tmp_path, kind, container):
    marker = tmp_path / "ran"
    path = _write(tmp_path / "evil.pt", container, _payload(kind, marker))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if container == "pickle":
            pickle.loads(path.read_bytes())
        else:
            torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("kind", PAYLOADS)
def test_a_payload_checkpoint_is_refused_and_never_runs(tmp_path, kind, container, loader):
    marker = tmp_path / "ran"
    path = _write(tmp_path / "evil.pt", container, _payload(kind, marker))
    # A bare pickle stream stops at its first opcode that torch's safe unpickler does not know
    # (protocol 4/5 framing), before the payload's GLOBAL: refused as "not a torch file".
    expected = "a plain pickle, not a torch file" if container == "pickle" else "refused: the file"
    with pytest.raises(CheckpointError, match=rf"evil\.pt: {expected}"):
        _load(loader, path)
    assert not marker.exists()


@pytest.mark.parametrize("loader", LOADERS)
def test_hand_written_opcodes_are_refused_and_never_run(tmp_path, loader):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(OPCODES % str(marker).encode())
    pickle.loads(path.read_bytes())  # control: the opcodes do run when unpickled unsafely
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="refused"):
        _load(loader, path)
    assert not marker.exists()


def _png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8), (120, 30, 200)).save(path)
    return path


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_the_cli_refuses_a_payload_checkpoint_in_one_line(tmp_path, capsys, command):
    require_command(command.split()[0])
    marker = tmp_path / "ran"
    if command == "train --resume":  # a run folder whose last checkpoint is the payload
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        path = tmp_path / "run" / "checkpoints" / "last.pt"
        args = ["train", "--resume", str(tmp_path / "run")]
    else:
        path = tmp_path / "evil.pt"
        args = [command, str(path)]
    _write(path, "nested", _payload("os.system", marker))
    if command == "predict":
        args.append(str(_png(tmp_path / "x.png")))
    if command == "export":
        args += ["--format", "torchscript", "--out", str(tmp_path / "m.pt")]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{path.name}: refused" in line
    assert not marker.exists()
