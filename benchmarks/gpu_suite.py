"""The GPU suite: the CUDA tests, ResNet-50 throughput and CIFAR ResNet-20, in one timed run.

On a GPU machine (one H100/H200; its own torch, no package registry), from the repository root,
with ``.carry/cifar10-jpeg.zip`` made beforehand by ``benchmarks/pack_cifar_jpeg.py`` and carried
(the device call's ``carry`` names ``.carry``), in one command:

    python3 -u benchmarks/gpu_suite.py --install --out $OUT

``--install`` first runs ``pip install --no-deps --no-build-isolation -e .`` (the machine's own
torch stays; without build isolation pip needs no index for setuptools). Should it fail, the
suite and its subprocesses import ``src/`` directly. It writes ``gpu_suite.json`` and
``gpu_suite.md`` into ``--out`` after every part, so a kill leaves the parts done, and prints the
Markdown last.

1. ``pytest -m gpu`` in a subprocess (``tests/test_gpu.py`` and the other gpu tests): its counts
   and failures from the JUnit XML it writes.
2. ResNet-50, 224x224 synthetic images, batch 256: training images/s of ``train_step`` (through
   ``resnetlab.bench.train.make_train_step``) in eager fp32, bf16 + channels-last, and the same
   with ``torch.compile``, the settings taking turns window by window over several rounds; the
   median and min..max over rounds, the ratio to eager fp32, the FLOP rate against the matmul
   peak of the same run; then inference at batch 1 and 256 (``resnetlab.bench.infer``).
3. CIFAR ResNet-20 on the JPEG copy (unpacked from the zip), ``--preset cifar-paper``, the
   device-resident pipeline: images/s per setting, the evaluation time, and the paper's
   64k-iteration schedule run for real (``resnetlab train``) when the measured rates say it ends
   within what is left of the budget, with its test accuracy; else its extrapolated wall time.

``--budget-s`` (default 480) bounds the whole run: a part starts only if it can have its minimum
while the parts after it keep theirs, stops its rounds at its own deadline, and says what it
skipped and why. ``--dry-run`` runs every part on the CPU at tiny sizes (the CUDA tests skip
there; give it ``--cifar-zip`` of a small folder, as ``tests/test_gpu_suite.py`` does, since the
real copy takes minutes to unpack and decode on a CPU), so that a test keeps the suite working.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))  # the sibling scripts (benchmarks/ is not a package)
if importlib.util.find_spec("resnetlab") is None:  # not installed: use the checkout's src/
    sys.path.insert(1, str(REPO / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
    )

import torch  # noqa: E402

import gpu_cifar  # noqa: E402
import gpu_parts  # noqa: E402
import gpu_report  # noqa: E402
from resnetlab.atomic import write_text  # noqa: E402
from resnetlab.bench.timing import machine_info  # noqa: E402

PARTS = ("pytest", "resnet50", "cifar")
DEFAULT_ZIP = REPO / ".carry" / "cifar10-jpeg.zip"


@dataclass(frozen=True)
class Sizes:
    """How large each part is: the real run on a GPU, or the dry run's tiny one on the CPU."""

    device: str  # where parts 2 and 3 run
    pytest_args: tuple[str, ...]  # what pytest is given (besides its output options)
    pytest_workers: int  # pytest-xdist processes (0: none)
    net: str  # part 2's network
    net_image: int | None  # its input side; None = the network's own (224)
    net_batch: int  # part 2's training batch
    steps: int  # training steps per timed window
    windows: int  # timed windows per setting per round
    rounds: int  # rounds in which the settings take turns
    warmup: int  # untimed steps of each setting before its first round (compiles here)
    compile_rows: bool  # time torch.compile rows (minutes of compiling on a CPU)
    compile_s: float  # what a torch.compile of the training step is allowed (an estimate)
    infer_batches: tuple[int, ...]  # inference batch sizes
    infer_iters: int  # timed inference calls per form
    cifar_batch: int  # part 3's batch (the paper's 128)
    cifar_steps: int  # training steps per timed window in part 3
    paper_iterations: int  # the schedule run or extrapolated (the paper's 64k)
    startup_s: float  # allowance for the paper run's process start (imports, CUDA, cached data)
    peak_size: int | None  # side of the matmul that measures the peak (None: 8192 on a GPU)
    min_s: dict[str, float] = field(default_factory=dict)  # what each part needs to start


GPU = Sizes(
    device="cuda",
    pytest_args=("-m", "gpu", "tests"),
    pytest_workers=4,
    net="resnet50",
    net_image=None,
    net_batch=256,
    steps=10,
    windows=2,
    rounds=3,
    warmup=3,
    compile_rows=True,
    compile_s=150.0,
    infer_batches=(1, 256),
    infer_iters=30,
    cifar_batch=128,
    cifar_steps=100,
    paper_iterations=64000,
    startup_s=20.0,
    peak_size=None,
    min_s={"pytest": 60.0, "resnet50": 90.0, "cifar": 60.0},
)
# The same parts on the CPU in seconds: a net and images that small, the CUDA tests skipping.
DRY = Sizes(
    device="cpu",
    pytest_args=("-m", "gpu", "tests/test_gpu.py"),
    pytest_workers=0,
    net="resnet20",
    net_image=16,
    net_batch=8,
    steps=2,
    windows=1,
    rounds=2,
    warmup=1,
    compile_rows=False,
    compile_s=0.0,
    infer_batches=(1, 4),
    infer_iters=2,
    cifar_batch=8,
    cifar_steps=1,
    paper_iterations=4,
    startup_s=10.0,
    peak_size=256,
    min_s={"pytest": 5.0, "resnet50": 5.0, "cifar": 5.0},
)


class Budget:
    """The run's wall-clock budget: parts ask what they may use before they start."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic):
        self.total_s, self.clock, self.start = total_s, clock, clock()

    def used(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.total_s - self.used()


def run_parts(args: argparse.Namespace, sizes: Sizes, record: dict, budget: Budget) -> None:
    """Run the parts asked for in order, each within what the budget and the later parts allow."""
    out = args.out
    work = Path(tempfile.mkdtemp(prefix="gpu_suite-", dir=scratch_root()))
    record["work_dir"] = str(work)
    parts = {
        "pytest": lambda limit: gpu_parts.pytest_part(sizes, out, limit),
        "resnet50": lambda limit: gpu_parts.resnet50_part(sizes, limit),
        "cifar": lambda limit: gpu_cifar.cifar_part(sizes, limit, args, work, out),
    }
    todo = [p for p in PARTS if p in args.parts]
    try:
        for name in todo:
            allowed, why = allowance(name, todo, budget.left(), sizes.min_s)
            if why:
                record["parts"][name] = {"status": "skipped", "reason": why}
            else:
                say(f"{name}: started, {allowed:.0f} s allowed ({budget.left():.0f} s left)")
                record["parts"][name] = timed_part(parts[name], allowed)
            say(f"{name}: {record['parts'][name]['status']} at {budget.used():.0f} s")
            record["budget"]["used_s"] = budget.used()
            write_outputs(record, out)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    record["budget"]["used_s"] = budget.used()


def say(message: str) -> None:
    """A progress line on stderr (the report itself comes on stdout at the end)."""
    print(f"gpu_suite: {message}", file=sys.stderr, flush=True)


def allowance(
    name: str, todo: list[str], left_s: float, min_s: dict[str, float]
) -> tuple[float, str | None]:
    """The seconds part ``name`` may use, and why it must be skipped (None: it may run).

    A part gets what is left of the budget less the minimums of the parts after it in ``todo``,
    so that a long part cannot starve the later ones; it runs only if that is its own minimum.
    """
    reserve = sum(min_s[p] for p in todo[todo.index(name) + 1 :])
    allowed = left_s - reserve
    if allowed >= min_s[name]:
        return allowed, None
    return allowed, (
        f"needs at least {min_s[name]:.0f} s; {max(allowed, 0):.0f} s of the budget left after "
        f"keeping {reserve:.0f} s for the parts after it"
    )


def timed_part(fn: Callable[[float], dict], limit_s: float) -> dict:
    """``fn(limit_s)``'s record with its duration; an exception becomes an ``error`` record."""
    start = time.monotonic()
    try:
        result = fn(limit_s)
    except Exception as err:  # a part's failure is reported, and the next part still runs
        lines = traceback.format_exc().splitlines()
        result = {
            "status": "error",
            "error": f"{type(err).__name__}: {err}",
            "traceback": lines[-12:],
        }
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    result.setdefault("status", "ok")
    result["limit_s"] = limit_s
    result["seconds"] = time.monotonic() - start
    return result


def scratch_root() -> str | None:
    """Shared memory when it has room (60,000 small files unpack fastest there), else $TMPDIR."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * 2**30:
        return str(shm)
    return None


def environment(sizes: Sizes, argv: list[str], budget_s: float) -> dict:
    """What the run ran on and with: device, driver, versions, settings, the command."""
    from resnetlab import __version__

    info = machine_info(sizes.device)
    info |= {
        "command": shlex.join(["python3", "benchmarks/gpu_suite.py", *argv]),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "resnetlab": __version__,
        "resnetlab_from": str(Path(sys.modules["resnetlab"].__file__).parent),
        "git_commit": git_commit(),
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32": {
            "cudnn": torch.backends.cudnn.allow_tf32,
            "matmul": torch.backends.cuda.matmul.allow_tf32,
        },
        "nvidia_smi": nvidia_smi(),
        "budget_s": budget_s,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu_properties"] = {
            "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
        }
    return info


def nvidia_smi() -> dict | str:
    """The GPU as ``nvidia-smi`` reads it (driver, clocks, power limit); why not, where absent."""
    fields = [
        "name",
        "driver_version",
        "memory.total",
        "clocks.sm",
        "clocks.max.sm",
        "power.limit",
        "temperature.gpu",
    ]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "unavailable: no nvidia-smi on the PATH"
    cmd = [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"]
    try:
        line = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable: {err}"
    values = [v.strip() for v in line.splitlines()[0].split(",")] if line.strip() else []
    return dict(zip(fields, values, strict=False)) if values else "unavailable: no output"


def git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


def write_outputs(record: dict, out: Path) -> None:
    write_text(out / "gpu_suite.json", json.dumps(record, indent=1, default=str) + "\n")
    write_text(out / "gpu_suite.md", gpu_report.markdown(record) + "\n")


def exit_code(record: dict) -> int:
    """1 when a part failed or erred (skipped parts do not count), else 0."""
    return int(any(p["status"] in ("failed", "error") for p in record["parts"].values()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_suite.json/.md and logs")
    p.add_argument(
        "--budget-s", type=float, default=480.0, help="wall-clock budget of the whole run"
    )
    p.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, seconds")
    p.add_argument("--cifar-zip", type=Path, default=DEFAULT_ZIP, help="the packed JPEG copy")
    p.add_argument("--cifar-dir", type=Path, help="an unpacked JPEG copy (instead of the zip)")
    p.add_argument(
        "--paper-setting",
        choices=["fastest", "preset"],
        default="fastest",
        help="the paper run's setting: the fastest measured, or the preset's fp32",
    )
    p.add_argument("--install", action="store_true", help="pip install -e . without dependencies")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (data, runs)")
    args = p.parse_args(argv)
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or args.budget_s <= 0:
        p.error(f"unknown parts {unknown}" if unknown else "--budget-s must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    budget = Budget(args.budget_s)  # from the start: CUDA's initialisation counts too
    sizes = DRY if args.dry_run else GPU
    if sizes.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: error: no CUDA device here; use --dry-run on a CPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "suite": "gpu_suite",
        "dry_run": args.dry_run,
        "sizes": asdict(sizes),
        "environment": environment(sizes, argv, args.budget_s),
        "budget": {"total_s": args.budget_s, "used_s": 0.0},
        "parts": {},
    }
    if args.install:
        record["install"] = gpu_parts.install()
    run_parts(args, sizes, record, budget)
    record["environment"]["nvidia_smi_after"] = nvidia_smi()
    write_outputs(record, args.out)
    print(gpu_report.markdown(record))
    return exit_code(record)


if __name__ == "__main__":
    sys.exit(main())
