"""Distributed: SIGKILL one of two ranks of a torchrun (gloo) run. The other rank does not hang:
torchrun stops it within seconds and exits non-zero naming the rank and the signal; every
checkpoint on disk is complete, and ``--resume`` under torchrun finishes the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliability_support import TRAIN_FAST, assert_intervals_complete, wait_for
from resnetlab.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

N, LOG_EVERY, EVAL_EVERY = 60, 5, 20
ARGS = [*TRAIN_FAST, "--batch-size", "32", "--iterations", str(N),  # 16 images per rank
        "--set", "checkpoint_every=2", "--set", f"log_every={LOG_EVERY}",
        "--set", f"eval_every={EVAL_EVERY}"]  # fmt: skip
RANKS = [0, 1]  # which rank is killed
STOP_BOUND_S = 60  # the survivor is gone this soon after the kill (no collective timeout wait)
TIMEOUT_S = 300


def _torchrun(args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "resnetlab", "train", *args]  # fmt: skip
    return subprocess.Popen(
        cmd,
        env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so that cleanup reaches every worker
    )


def _worker_pid(launcher: subprocess.Popen, rank: int) -> int:
    for pid in subprocess.run(
        ["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True, check=False
    ).stdout.split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} under torchrun {launcher.pid}")


def _finish(launcher: subprocess.Popen, timeout: float) -> str:
    try:
        return launcher.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        output = launcher.communicate()[0]
        tail = output[-3000:]
        raise AssertionError(f"torchrun still running after {timeout} s:\n{tail}") from None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
@pytest.mark.parametrize("rank", RANKS)
def test_killing_one_rank_stops_the_run_cleanly_and_it_resumes(tmp_path, rank):
    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    launcher = _torchrun([*ARGS, "--out", str(out)])
    try:
        # Kill at step 20 + (0..1 steps): past the first evaluation, in the middle of the run.
        wait_for(lambda: (ckpts / "step-00000020.pt").exists(), timeout=TIMEOUT_S)
        os.kill(_worker_pid(launcher, rank), signal.SIGKILL)
        killed_at = time.monotonic()
        output = _finish(launcher, STOP_BOUND_S)
        stopped_after = time.monotonic() - killed_at
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0
    assert stopped_after < STOP_BOUND_S
    # torchrun's report names the rank that died first and how.
    root_cause = output.split("Root Cause", 1)[-1]
    assert f"rank      : {rank} " in root_cause and "SIGKILL" in root_cause, output[-3000:]
    for path in ckpts.glob("*.pt"):
        assert load_checkpoint(path)["progress"]["iteration"] < N
    assert not (out / "summary.json").exists()

    resumed = _torchrun(["--resume", str(out)])
    output = _finish(resumed, TIMEOUT_S)
    assert resumed.returncode == 0, output[-3000:]
    assert load_checkpoint(ckpts / "last.pt")["progress"]["iteration"] == N
    assert_intervals_complete(out, N, LOG_EVERY, EVAL_EVERY)
