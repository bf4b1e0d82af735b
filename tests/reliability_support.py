"""Shared tools of the reliability, fuzz and security tests (``test_reliability_*``,
``test_fuzz_*``, ``test_security_*``, ``test_cli_errors``).

- ``FUZZ`` / ``fuzz(n)``: one hypothesis profile for every reader: derandomized (CI sees the same
  cases on every run), no example database, no deadline (the hang guard below is a hard one).
  ``RESNETLAB_FUZZ_SEED=N`` (``make fuzz SEED=N``) draws another slice of cases, seeded by N;
  ``RESNETLAB_FUZZ_SCALE=F`` runs F times the cases (fewer on a busy machine).
- ``mutations(valid)``: bytes made from a valid file by bit flips, truncation, inserted,
  overwritten, deleted or duplicated ranges, or random bytes of the same length scale.
- ``hang_guard(seconds)``: raise ``Hang`` when the body runs longer (SIGALRM; main thread only).
- ``read_cleanly(read, *args)``: a reader's result or a ``UserError``; anything else fails.
- ``peak_rss_mb()`` / ``current_rss_mb()``: this process's peak and current memory, in MiB.
- ``run_cli(...)``: ``python -m resnetlab ...`` in a subprocess with a hard timeout;
  ``cli_in_process(argv)``: ``resnetlab.cli.main`` in this process, its stderr and warnings.
- ``snapshot(folder)``: every file (its bytes), folder and link under a folder, to compare
  before and after a command that must change nothing.
- ``make_run(folder)``: a real run folder (2 steps of ResNet-8 on 8x8 digits), in process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]

# Cases per reader, per kind of input. The table in RELIABILITY.md quotes these numbers, and
# test_reliability_report checks that it does.
FUZZ_MUTATED = 150
FUZZ_RANDOM = 60
CASE_SECONDS = 10  # a single input taking longer than this to read counts as a hang
RSS_BOUND_MB = 300  # peak-memory growth allowed over a whole fuzz run

# Unset, every fuzz test draws the fixed cases CI runs (hypothesis derives each test's seed from
# its code); set, every fuzz test draws the cases of this seed instead.
FUZZ_SEED = (
    int(os.environ["RESNETLAB_FUZZ_SEED"]) if os.environ.get("RESNETLAB_FUZZ_SEED") else None
)
FUZZ_SCALE = float(os.environ.get("RESNETLAB_FUZZ_SCALE") or 1)  # cases run per case counted

FUZZ = settings(
    derandomize=FUZZ_SEED is None,
    database=None,
    deadline=None,
    max_examples=FUZZ_MUTATED,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


def fuzz(max_examples: int) -> Callable:
    """A decorator for a ``@given`` test: the ``FUZZ`` profile with ``max_examples`` cases
    (times ``FUZZ_SCALE``), seeded by ``FUZZ_SEED`` when it is set."""
    profile = settings(FUZZ, max_examples=max(1, round(max_examples * FUZZ_SCALE)))

    def apply(test: Callable) -> Callable:
        test = profile(test)
        return test if FUZZ_SEED is None else seed(FUZZ_SEED)(test)

    return apply


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


def read_cleanly(read: Callable[..., object], *args: object) -> object:
    """``read(*args)``: its result, or ``None`` after a ``UserError``; anything else, or a run
    past ``CASE_SECONDS``, propagates and fails the calling test."""
    from resnetlab.errors import UserError

    with hang_guard(), contextlib.suppress(UserError):
        return read(*args)
    return None


def fuzz_file(
    read: Callable[[Path], object], path: Path, data: st.SearchStrategy[bytes], max_examples: int
) -> None:
    """Write each example of ``data`` to ``path`` and read it back with ``read``.

    Every case must give a value or a clean error (``read_cleanly``), and the peak memory of the
    whole run may grow by less than ``RSS_BOUND_MB``.
    """
    before = peak_rss_mb()

    @fuzz(max_examples)
    @given(data)
    def case(content: bytes) -> None:
        path.write_bytes(content)
        read_cleanly(read, path)

    case()
    grown = peak_rss_mb() - before
    assert grown < RSS_BOUND_MB, f"peak memory grew by {grown:.0f} MB"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident memory now, in MiB, from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Mutated(bytes):
    """Bytes that print as a short description (hypothesis prints failing cases)."""

    edit: str = ""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes, {self.edit}>"


def _described(data: bytes, edit: str) -> Mutated:
    out = Mutated(data)
    out.edit = edit
    return out


@st.composite
def mutations(draw, valid: bytes, focus: Sequence[tuple[int, int]] = ()) -> bytes:
    """One mutated copy of ``valid`` (never ``valid`` itself unless the edit is a no-op).

    Args:
        valid: a well-formed file.
        focus: (start, end) byte ranges that hold the file's structure (headers, an index);
            most edits land in one of them, the rest anywhere, so that a large file's bulk
            data does not soak up the cases.
    """
    n = len(valid)
    lo, hi = draw(st.sampled_from([(0, n), *focus, *focus, *focus]))
    lo, hi = max(0, min(lo, n - 1)), max(1, min(hi, n))

    def at() -> int:
        return draw(st.integers(lo, max(lo, hi - 1)))

    kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "delete", "dup"]))
    data = bytearray(valid)
    if kind == "flip":
        flips = [(at(), draw(st.integers(0, 7))) for _ in range(draw(st.integers(1, 16)))]
        for i, bit in flips:
            data[i] ^= 1 << bit
        return _described(data, f"bits flipped (offset, bit): {flips}")
    i = at()
    if kind == "truncate":
        del data[i:]
        return _described(data, f"truncated at {i}")
    if kind in ("insert", "overwrite"):
        chunk = draw(st.binary(min_size=1, max_size=64))
        data[i : i if kind == "insert" else i + len(chunk)] = chunk
        return _described(data, f"{kind} {chunk!r} at {i}")
    if kind == "delete":
        j = i + draw(st.integers(1, 256))
        del data[i:j]
        return _described(data, f"deleted [{i}:{j}]")
    j = draw(st.integers(i, min(n, i + 256)))
    data[j:j] = data[i:j]
    return _described(data, f"duplicated [{i}:{j}]")


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


def cli_in_process(argv: Sequence[str], timeout: float = 120) -> tuple[int, str]:
    """``resnetlab ARGV`` in this process: (exit code, stderr), every warning raised counted as
    a line of stderr (pytest would otherwise swallow them); argparse's exits included."""
    code, _, err = cli_capture(argv, timeout)
    return code, err


def cli_capture(argv: Sequence[str], timeout: float = 120) -> tuple[int, str, str]:
    """``cli_in_process`` with stdout too: (exit code, stdout, stderr and warnings)."""
    import io
    import warnings

    from resnetlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(out),
        hang_guard(timeout),
    ):
        warnings.simplefilter("always")  # every one, then Python's defaults for what is hidden
        for hidden in (
            DeprecationWarning,
            PendingDeprecationWarning,
            ImportWarning,
            ResourceWarning,
        ):
            warnings.simplefilter("ignore", hidden)
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
    lines = [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    return code, out.getvalue(), err.getvalue() + "".join(f"{line}\n" for line in lines)


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry under ``folder`` (links not followed): a file's bytes, ``"dir"``, or
    ``("link", target)``, by relative path."""
    entries: dict[str, object] = {}
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(parent) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                entries[key] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[key] = "dir"
            else:
                entries[key] = path.read_bytes()
    return entries


def changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What differs between two snapshots: paths added, removed or changed."""
    added = [f"added {k}" for k in after if k not in before]
    removed = [f"removed {k}" for k in before if k not in after]
    changed = [f"changed {k}" for k in before if k in after and before[k] != after[k]]
    return added + removed + changed


def make_run(folder: Path, iterations: int = 2) -> Path:
    """A real run folder: ``resnetlab train`` for ``iterations`` steps of ``TRAIN_FAST``."""
    code, err = cli_in_process(["train", *TRAIN_FAST, "--iterations", str(iterations),
                                "--out", str(folder)])  # fmt: skip
    assert code == 0, err
    return folder


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


def tiny_checkpoint(in_channels: int = 1, image_size: int = 8) -> dict:
    """A complete resnetlab checkpoint of an untrained depth-8 CIFAR net (digits-like data)."""
    import torch

    from resnetlab.models import build_model
    from resnetlab.train.checkpoint import FORMAT, seal

    torch.manual_seed(0)
    model = build_model("cifar_resnet", 10, in_channels, {"depth": 8})
    return seal(
        {
            "format": FORMAT,
            "version": "test",
            "model": {
                "name": "cifar_resnet",
                "overrides": {"depth": 8},
                "num_classes": 10,
                "in_channels": in_channels,
            },
            "data": {
                "name": "digits",
                "classes": [str(d) for d in range(10)],
                "image_size": [image_size, image_size],
                "channels": in_channels,
                "mean": [0.5] * in_channels,
                "std": [0.25] * in_channels,
            },
            "config": {},
            "state": {"model": model.state_dict()},
            "progress": {"iteration": 1},
        }
    )


# ----------------------------------------------------------------------------------------------
# Training runs in child processes that start in a fraction of a second
# ----------------------------------------------------------------------------------------------
# A ResNet-8 (§4.2's CIFAR net, n = 1) on 8x8 digits: a real run, a few ms per step.
TRAIN_FAST = [
    "--model", "cifar_resnet", "--set", "model.overrides.depth=8", "--data", "digits",
    "--image-size", "8", "--batch-size", "16", "--set", "deterministic=true",
    "--set", "eval_train_at_end=false",
]  # fmt: skip
# Imported once by the fork server, so that each child skips torch's, scikit-learn's and
# dynamo's import time (several seconds on a busy 2-core machine).
PRELOAD = [
    "torch",
    "torch._inductor.standalone_compile",  # imported by use_deterministic_algorithms
    "sklearn.datasets",
    "resnetlab.cli",
    "resnetlab.cli.train",
    "resnetlab.train.loop",
    "resnetlab.data.digits",
]


def _cli_child(argv: list[str], log: str) -> None:
    """Fork-server child: ``resnetlab ARGV`` with stdout and stderr in ``log``; exits its code."""
    import torch

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    torch.set_num_threads(1)  # every run of a comparison does the same arithmetic
    from resnetlab.cli import main

    sys.exit(main(argv))


def start_cli(argv: Sequence[str], log: str | Path):
    """Start ``resnetlab ARGV`` in a child forked from a preloaded server; returns the Process."""
    import multiprocessing

    from resnetlab.cli import COMMANDS

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, *(f"resnetlab.cli.{name}" for name in COMMANDS)])
    proc = ctx.Process(target=_cli_child, args=(list(argv), str(log)), daemon=True)
    proc.start()
    return proc


def run_cli_child(argv: Sequence[str], log: str | Path, timeout: float = 300) -> int:
    """``resnetlab ARGV`` in a preloaded child, to its end; returns the exit code."""
    proc = start_cli(argv, log)
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise AssertionError(f"resnetlab {' '.join(argv)} ran past {timeout} s")
    return proc.exitcode


def wait_for(condition: Callable[[], bool], proc=None, timeout: float = 120, poll: float = 0.002):
    """Poll ``condition`` until true; fail if ``proc`` ends first or ``timeout`` passes."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and not proc.is_alive():
            raise AssertionError(f"the run ended (code {proc.exitcode}) before the condition")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        time.sleep(poll)


def records(run_dir: Path) -> list[dict]:
    """metrics.jsonl of a run, without the timings (they differ between runs by nature)."""
    import json

    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("wall_s", "img_per_s")}
        for line in lines
    ]


def assert_intervals_complete(run_dir: Path, total: int, log_every: int, eval_every: int) -> None:
    """Every train and eval interval of the run is recorded exactly once, in order."""
    recs = records(run_dir)
    train = [r["iteration"] for r in recs if r["kind"] == "train"]
    evals = [r["iteration"] for r in recs if r["kind"] == "eval"]
    assert train == [*range(log_every, total + 1, log_every)] + (
        [total] if total % log_every else []
    )
    assert evals == [*range(eval_every, total + 1, eval_every)] + (
        [total] if total % eval_every else []
    )
