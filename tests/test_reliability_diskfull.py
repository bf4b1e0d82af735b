"""A write that fails while a checkpoint is saved (disk full, permission denied): the run stops
with one line, the previous checkpoint stays intact and loadable, and ``--resume`` continues.

The faults are simulated where the OS cannot be made to produce them here: ENOSPC by a
``torch.save`` that writes half the checkpoint and then fails, as a full disk does; EACCES by a
read-only ``checkpoints/`` folder, or, when the tests run as root (which ignores permissions), by
an ``open`` that refuses to create files there.
"""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import pytest
import torch

from reliability_support import TRAIN_FAST, assert_intervals_complete
from resnetlab import atomic as atomic_module
from resnetlab.cli import main
from resnetlab.train.checkpoint import load_checkpoint

N, EVERY = 30, 10  # the fault hits the second checkpoint, at iteration 20
ARGS = [*TRAIN_FAST, "--iterations", str(N), "--set", f"checkpoint_every={EVERY}",
        "--set", "log_every=5", "--set", "eval_every=10", "--set", "keep_last=1"]  # fmt: skip
FAULTS = ["disk-full", "permission-denied"]
CASES = len(FAULTS)


def _fail_second_save_with_enospc(monkeypatch) -> None:
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) < 2:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04" + b"\0" * 4096)  # the first bytes of a zip, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), getattr(f, "name", None))

    monkeypatch.setattr(torch, "save", save)


def _deny_second_save(monkeypatch, ckpts: Path) -> None:
    real_save, calls = torch.save, []
    real_open = builtins.open

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # after the first checkpoint file, the folder becomes read-only
            if os.geteuid() != 0:
                ckpts.chmod(0o555)
            else:  # root ignores the mode bits: refuse the next file created in the folder
                monkeypatch.setattr(atomic_module, "open", _refusing_open, raising=False)

    def _refusing_open(path, mode="r", *args, **kwargs):
        if Path(path).parent == ckpts and "w" in mode:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_checkpoint_write_stops_the_run_and_keeps_the_last_one(
    tmp_path, monkeypatch, capsys, fault
):
    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    if fault == "disk-full":
        _fail_second_save_with_enospc(monkeypatch)
        reason = "No space left on device"
    else:
        _deny_second_save(monkeypatch, ckpts)
        reason = "Permission denied"
    assert main(["train", *ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("resnetlab: error: ")
    assert f"{reason}; the run stopped; its last checkpoint is intact: " in err
    assert err.endswith(f"continue with --resume {out}\n")

    monkeypatch.undo()
    ckpts.chmod(0o755)
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.pt", "last.pt", "step-00000010.pt"]
    assert load_checkpoint(ckpts / "last.pt")["progress"]["iteration"] == EVERY
    assert not (out / "summary.json").exists()

    assert main(["train", "--resume", str(out)]) == 0
    assert load_checkpoint(ckpts / "last.pt")["progress"]["iteration"] == N
    assert_intervals_complete(out, N, log_every=5, eval_every=10)
    assert not [p for p in ckpts.iterdir() if ".tmp-" in p.name]
