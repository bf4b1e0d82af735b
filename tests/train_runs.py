"""Helpers for tests that run `resnetlab train` in child processes (resume, distributed, CLI).

Every child gets one intra-op thread (the same numerics in every run of a comparison, and no
oversubscription of a 2-core machine) and a timeout, so that no test can hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# A ResNet-8 (§4.2's CIFAR net with n = 1) on 16x16 digits: a real run that takes seconds.
TINY = ["--model", "cifar_resnet", "--set", "model.overrides.depth=8", "--data", "digits",
        "--image-size", "16", "--set", "deterministic=true"]  # fmt: skip
TIMEOUT_S = 300


def env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def train_command(args: list[str], nproc: int = 1) -> list[str]:
    """`python -m resnetlab train ARGS`, under torchrun when ``nproc`` > 1."""
    if nproc == 1:
        return [sys.executable, "-m", "resnetlab", "train", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, f"--nproc-per-node={nproc}", "-m", "resnetlab", "train", *args]


def train(args: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    """Run a training to its end; fail the test with the child's output if it fails."""
    proc = subprocess.run(
        train_command(args, nproc), env=env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def train_until_killed(args: list[str], wait_for: Path, nproc: int = 1) -> None:
    """Start a training, and SIGKILL it (every process of it) as soon as ``wait_for`` exists."""
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed below; the child writes into it)
    proc = subprocess.Popen(
        train_command(args, nproc), env=env(), stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not wait_for.exists():
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
                raise AssertionError(
                    f"the run ended (code {proc.returncode}) before {wait_for}:\n{tail}"
                )
            assert time.monotonic() < deadline, f"{wait_for} did not appear in {TIMEOUT_S} s"
            time.sleep(0.002)
    finally:
        # torchrun starts each worker in a session of its own: kill the whole tree by pid.
        tree = [proc.pid, *descendants(proc.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
        _wait_until_dead(tree[1:])
        log.close()


def descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # "pid (comm) S ppid"
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _wait_until_dead(pids: list[int]) -> None:
    """Wait until each process is gone or a zombie (its files, and file locks, are closed)."""
    deadline = time.monotonic() + 60
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        while time.monotonic() < deadline:
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.01)


def checkpoint(run_dir: Path, name: str = "last.pt") -> dict:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)
