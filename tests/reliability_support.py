"""Shared tools of the reliability, fuzz and security tests (``test_reliability_*``,
``test_fuzz_*``, ``test_security_*``, ``test_cli_errors``).

- ``FUZZ``: one hypothesis profile for every reader: derandomized (CI sees the same cases on every
  run), no example database, no deadline (the hang guard below is a hard one instead).
- ``mutations(valid)``: bytes made from a valid file by bit flips, truncation, inserted,
  overwritten, deleted or duplicated ranges, or random bytes of the same length scale.
- ``hang_guard(seconds)``: raise ``Hang`` when the body runs longer (SIGALRM; main thread only).
- ``max_rss_growth()``: the growth of the process's peak memory over a block, in MiB.
- ``run_cli(...)``: ``python -m resnetlab ...`` in a subprocess with a hard timeout.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]

# Cases per reader, per kind of input. The table in RELIABILITY.md quotes these numbers, and
# test_reliability_report checks that it does.
FUZZ_MUTATED = 150
FUZZ_RANDOM = 60
CASE_SECONDS = 10  # a single input taking longer than this to read counts as a hang
RSS_BOUND_MB = 300  # peak-memory growth allowed over a whole fuzz run

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=FUZZ_MUTATED,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


class Hang(AssertionError):
    """A reader ran past ``CASE_SECONDS`` on one input."""


@contextlib.contextmanager
def hang_guard(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail with ``Hang`` when the body runs longer than ``seconds`` (wall clock)."""

    def alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident memory now, in MiB, from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@st.composite
def mutations(draw, valid: bytes) -> bytes:
    """One mutated copy of ``valid`` (never ``valid`` itself unless the edit is a no-op)."""
    n = len(valid)
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "delete", "dup"]))
    data = bytearray(valid)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 16))):
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del data[draw(st.integers(0, n - 1)) :]
    elif kind == "insert":
        i = draw(st.integers(0, n))
        data[i:i] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "overwrite":
        i = draw(st.integers(0, n - 1))
        chunk = draw(st.binary(min_size=1, max_size=64))
        data[i : i + len(chunk)] = chunk
    elif kind == "delete":
        i = draw(st.integers(0, n - 1))
        del data[i : i + draw(st.integers(1, 256))]
    else:
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(i, min(n, i + 256)))
        data[j:j] = data[i:j]
    return bytes(data)


def random_bytes(max_size: int = 4096) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes."""
    return st.binary(max_size=max_size)


def run_cli(
    args: Sequence[str],
    *,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess:
    """``python -m resnetlab ARGS`` in a fresh process; text output; killed after ``timeout``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "resnetlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
        check=False,
    )


def one_error_line(stderr: str) -> str:
    """The stderr of a CLI user error: exactly one non-empty line starting with the prog name."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("resnetlab"), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def cli_commands() -> list[str]:
    """The sub-commands the ``resnetlab`` parser has now (other work packages add theirs)."""
    import argparse

    from resnetlab.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def require_command(name: str) -> None:
    """Skip the calling test, with a reason, while ``resnetlab NAME`` does not exist yet."""
    import pytest

    if name not in cli_commands():
        pytest.skip(f"`resnetlab {name}` is not registered in resnetlab.cli.COMMANDS yet")
