"""A long run (2,000 steps, an evaluation every 100, checkpoints every 250) keeps its memory flat.

The run's resident memory is sampled from /proc/PID/statm while it trains, together with the
iteration it has reached (metrics.jsonl); after warm-up (the first evaluations and checkpoint)
the peak in a late window may not exceed the peak in an early one by more than the bound. A leak
of one small tensor per step (a loss kept with its graph, a growing list of records) breaks it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reliability_support import TRAIN_FAST, start_cli

STEPS, EVAL_EVERY, CHECKPOINT_EVERY = 2000, 100, 250
EARLY, LATE = (500, 800), (1650, 1950)  # iteration windows compared (both hold 3 evaluations)
GROWTH_BOUND_MB = 30
ARGS = [*TRAIN_FAST, "--iterations", str(STEPS), "--set", f"eval_every={EVAL_EVERY}",
        "--set", f"checkpoint_every={CHECKPOINT_EVERY}", "--set", "log_every=10",
        "--set", "keep_last=2"]  # fmt: skip


def _rss_mb(pid: int) -> float | None:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _iteration(metrics: Path) -> int:
    try:
        last = metrics.read_bytes().rstrip().rsplit(b"\n", 1)[-1]
    except FileNotFoundError:
        return 0
    marker = b'"iteration": '
    i = last.find(marker)
    return int(last[i + len(marker) :].split(b",")[0]) if i >= 0 else 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memory_stays_flat_over_a_long_run(tmp_path):
    out = tmp_path / "run"
    proc = start_cli(["train", *ARGS, "--out", str(out)], tmp_path / "run.log")
    samples: list[tuple[int, float]] = []  # (iteration reached, RSS in MiB)
    deadline = time.monotonic() + 600
    while proc.is_alive() and time.monotonic() < deadline:
        rss = _rss_mb(proc.pid)
        if rss is not None:
            samples.append((_iteration(out / "metrics.jsonl"), rss))
        time.sleep(0.05)
    proc.join(60)
    assert proc.exitcode == 0, (tmp_path / "run.log").read_text()[-3000:]

    def peak(window: tuple[int, int]) -> float:
        inside = [rss for it, rss in samples if window[0] <= it <= window[1]]
        assert len(inside) >= 5, f"only {len(inside)} samples in iterations {window}"
        return max(inside)

    early, late = peak(EARLY), peak(LATE)
    print(f"peak RSS {early:.1f} MiB at iterations {EARLY}, {late:.1f} MiB at {LATE}")
    assert late - early < GROWTH_BOUND_MB
