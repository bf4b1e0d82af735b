"""SIGKILL a training run at seeded random moments, half of them during a checkpoint write, and
resume it each time. After every kill each checkpoint file loads; at the end the metrics hold
every interval exactly once and the weights equal those of a run that was never interrupted.

Checkpoints are written after every step, so that writes are a large share of the run's time;
a "mid-write" kill waits for a checkpoint's temporary file to appear and kills at once (the
temporary file still being there afterwards shows that the kill landed inside the write).
Children come from a preloaded fork server (``reliability_support.start_cli``), so that twenty
restarts cost seconds, not minutes.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from reliability_support import (
    TRAIN_FAST,
    assert_intervals_complete,
    records,
    run_cli_child,
    start_cli,
    wait_for,
)
from resnetlab.train.checkpoint import load_checkpoint

KILLS = 20  # the slow test
KILLS_QUICK = 4  # the test that runs in every `pytest -m "not slow"`
SEED = 20151210  # the paper's arXiv date: the kill schedule is the same on every run
LOG_EVERY, EVAL_EVERY = 1, 25
# Run lengths: each kill lets 1-12 steps pass (93 in all for the 20 kills, 18 for the 4) plus a
# few more while it strikes; the rest of the run is done by the final resume.
LENGTH = {KILLS: 240, KILLS_QUICK: 60}


def train_args(n: int) -> list[str]:
    return [*TRAIN_FAST, "--iterations", str(n), "--set", "checkpoint_every=1",
            "--set", f"log_every={LOG_EVERY}", "--set", f"eval_every={EVAL_EVERY}",
            "--set", "keep_last=2"]  # fmt: skip


def schedule(kills: int, seed: int = SEED) -> list[tuple[str, int, float]]:
    """(kind, steps to let pass first, extra seconds) per kill; kinds alternate in random order."""
    rng = random.Random(seed)
    kinds = ["mid-write", "random"] * (kills // 2) + ["random"] * (kills % 2)
    rng.shuffle(kinds)
    return [(kind, rng.randint(1, 12), rng.uniform(0, 0.02)) for kind in kinds]


def _step(ckpts: Path) -> int:
    """The newest finished step file's iteration (0 when there is none)."""
    try:
        names = os.listdir(ckpts)
    except FileNotFoundError:
        return 0
    steps = [int(n[5:13]) for n in names if n.startswith("step-") and n.endswith(".pt")]
    return max(steps, default=0)


def _temp_files(ckpts: Path) -> list[str]:
    try:
        return [n for n in os.listdir(ckpts) if ".tmp-" in n]
    except FileNotFoundError:
        return []


def _kill_at(proc, kind: str, steps: int, extra_s: float, ckpts: Path) -> bool:
    """Let ``steps`` steps pass, then SIGKILL at a random moment or inside a checkpoint write.

    Returns whether the process was killed (False: the run had already finished).
    """
    start = _step(ckpts)
    try:
        wait_for(lambda: _step(ckpts) >= start + steps, proc, poll=0.001)
        if kind == "random":
            time.sleep(extra_s)
        else:
            wait_for(lambda: bool(_temp_files(ckpts)), proc, timeout=30, poll=0.0002)
    except AssertionError:
        if proc.exitcode == 0:
            return False
        raise
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    return proc.exitcode == -signal.SIGKILL


def _check_every_checkpoint_loads(ckpts: Path, n: int) -> None:
    for path in ckpts.glob("*.pt"):
        ckpt = load_checkpoint(path)  # raises on a half-written file
        assert 1 <= ckpt["progress"]["iteration"] <= n


def _kill_and_resume(tmp_path: Path, kills: int) -> dict:
    n = LENGTH[kills]
    args = train_args(n)
    straight, out = tmp_path / "straight", tmp_path / "killed"
    assert run_cli_child(["train", *args, "--out", str(straight)], tmp_path / "straight.log") == 0
    ckpts, log = out / "checkpoints", tmp_path / "killed.log"
    stats = {"kills": 0, "mid_write": 0}
    for kind, steps, extra_s in schedule(kills):
        # A run killed before it wrote config.yaml is no run yet: it is started again.
        resume = (out / "config.yaml").exists()
        argv = ["train", "--resume", str(out)] if resume else ["train", *args, "--out", str(out)]
        proc = start_cli(argv, log)
        if not _kill_at(proc, kind, steps, extra_s, ckpts):
            break
        stats["kills"] += 1
        left = _temp_files(ckpts)
        stats["mid_write"] += bool(left)
        assert not [name for name in left if name.endswith(".pt")]  # never taken for a checkpoint
        _check_every_checkpoint_loads(ckpts, n)
        assert not (out / "summary.json").exists()
    assert run_cli_child(["train", "--resume", str(out)], log) == 0, log.read_text()[-3000:]

    assert stats["kills"] == kills, f"the run finished after {stats['kills']} kills"
    assert _temp_files(ckpts) == []  # the resumed run removed what the killed writers left
    assert_intervals_complete(out, n, LOG_EVERY, EVAL_EVERY)
    assert records(out) == records(straight)  # the same losses and errors, to the last bit
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, out))
    assert b["progress"]["iteration"] == n
    for key, tensor in a["state"]["model"].items():
        assert torch.equal(tensor, b["state"]["model"][key]), key
    return stats


def test_schedule_is_seeded_mixes_both_kinds_and_fits_the_run():
    assert schedule(KILLS) == schedule(KILLS)
    kinds = [kind for kind, _, _ in schedule(KILLS)]
    assert kinds.count("mid-write") == kinds.count("random") == KILLS // 2
    for kills, n in LENGTH.items():  # room for 4 more steps per kill than the schedule asks
        assert sum(steps for _, steps, _ in schedule(kills)) + 4 * kills < n


def test_a_run_killed_a_few_times_resumes_bit_identically(tmp_path):
    _kill_and_resume(tmp_path, KILLS_QUICK)


@pytest.mark.slow
def test_a_run_killed_twenty_times_resumes_bit_identically(tmp_path):
    stats = _kill_and_resume(tmp_path, KILLS)
    # The mid-write kills wait for a temporary file, so most of them land inside a write; one
    # is enough to prove that the test covers the case.
    assert stats["mid_write"] >= 1, stats
