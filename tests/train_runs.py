"""Helpers for tests that run `resnetlab train` in child processes (resume, distributed, CLI).

Every child gets one intra-op thread (the same numerics in every run of a comparison, and no
oversubscription of a 2-core machine) and a timeout, so that no test can hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
    proc = subprocess.Popen(
        train_command(args, nproc),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches torchrun's workers too
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not wait_for.exists():
            assert proc.poll() is None, f"the run ended (code {proc.returncode}) before {wait_for}"
            assert time.monotonic() < deadline, f"{wait_for} did not appear in {TIMEOUT_S} s"
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def checkpoint(run_dir: Path, name: str = "last.pt") -> dict:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)
