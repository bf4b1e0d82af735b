"""The training step's ablation: each setting's CPU time and wall time per image against the
typical-user reference, measured in one process, interleaved over rounds.

CPU time (user + system of the whole process, ``time.process_time``) is the measure that stays
meaningful on a loaded, shared machine: with one torch thread nothing spins while it waits, so
CPU time per image is the work a setting costs. Wall time is the measure on a quiet machine (use
it there, with the thread count the machine has). The reference is ``reference_train.py`` with
its DataLoader in the process (``workers=0``) so that its per-image augmentation is counted in
the same clock; each resnetlab row is the loop's own ``train_step`` on a run ``build_run`` made
(``resnetlab.bench.train.make_train_step``). ``compile`` rows report the first-call compile time
(CPU and wall) separately. The machine's fp32 matmul peak is timed in the same clocks.

    python benchmarks/ablation_step.py                         # 1 thread, CPU time and wall
    python benchmarks/ablation_step.py --threads 2 --rows reference cl cl-compile   # quiet machine
    python benchmarks/ablation_step.py --quick                 # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import reference_step  # a sibling script (benchmarks/ is not a package)
from resnetlab.analysis import summarize
from resnetlab.atomic import write_text
from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.bench.train import make_train_step
from resnetlab.models import create_model

# name: (what it is, make_train_step options); "reference" is the typical loop.
ROWS = {
    "reference": ("reference (eager fp32 NCHW, per-image Dataset, DataLoader in-process)", None),
    "nchw": ("resnetlab, fp32, NCHW", {"precision": "fp32", "channels_last": False}),
    "cl": ("resnetlab, fp32, channels-last", {"precision": "fp32", "channels_last": True}),
    "cl-foreach": ("+ foreach SGD", {"precision": "fp32", "channels_last": True,
                                     "sets": ["optim.implementation=foreach"]}),
    "cl-fused": ("+ fused SGD", {"precision": "fp32", "channels_last": True,
                                 "sets": ["optim.implementation=fused"]}),
    "cl-compile": ("+ torch.compile (inductor)", {"precision": "fp32", "channels_last": True,
                                                  "compile": True}),
    "cl-bf16": ("channels-last, bf16 autocast", {"precision": "bf16", "channels_last": True}),
    "cl-bf16-fused": ("channels-last, bf16 autocast, fused SGD",
                      {"precision": "bf16", "channels_last": True,
                       "sets": ["optim.implementation=fused"]}),
    "cl-bf16-compile": ("channels-last, bf16 autocast, torch.compile (inductor)",
                        {"precision": "bf16", "channels_last": True, "compile": True}),
}  # fmt: skip


def clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def build_rows(args: argparse.Namespace) -> dict[str, tuple[Callable[[], None], dict]]:
    """Every row's step, its first calls made (compiled), and what those first calls cost."""
    rows = {}
    for name in args.rows:
        label, options = ROWS[name]
        cpu0, wall0 = clocks()
        if options is None:
            step = reference_step(args.batch_size, 0, "cpu", args.ref_images)
        else:
            extra = {"sets": [*options.get("sets", []), *args.set]}
            opts = {k: v for k, v in options.items() if k != "sets"} | extra
            step = make_train_step("resnet20", batch_size=args.batch_size, **opts).step
        for _ in range(args.warmup):
            step()
        cpu1, wall1 = clocks()
        rows[name] = (
            step,
            {"label": label, "first_cpu_s": cpu1 - cpu0, "first_wall_s": wall1 - wall0},
        )
    return rows


def matmul_peak(n: int, dtype: torch.dtype, repeats: int = 5) -> dict[str, float]:
    """FLOP per CPU second and per wall second of an n x n matmul in ``dtype`` (medians)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = clocks()
        torch.mm(a, b)
        c1, w1 = clocks()
        cpu.append(2 * n**3 / (c1 - c0))
        wall.append(2 * n**3 / (w1 - w0))
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall)}


def measure(args: argparse.Namespace) -> tuple[dict, dict]:
    rows = build_rows(args)
    per_image: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "wall": []} for n in rows}
    for _ in range(args.repeats):
        for name, (step, _) in rows.items():
            c0, w0 = clocks()
            for _ in range(args.steps):
                step()
            c1, w1 = clocks()
            images = args.steps * args.batch_size
            per_image[name]["cpu"].append((c1 - c0) / images * 1e3)  # ms per image
            per_image[name]["wall"].append((w1 - w0) / images * 1e3)
    peaks = {"fp32": matmul_peak(args.peak_size, torch.float32)}
    if any(_precision(n) == "bf16" for n in rows):
        peaks["bf16"] = matmul_peak(args.peak_size, torch.bfloat16)
    return {n: {**rows[n][1], **per_image[n]} for n in rows}, peaks


def _precision(row: str) -> str:
    """The arithmetic a row's step runs in (the reference is fp32)."""
    options = ROWS[row][1] or {}
    return str(options.get("precision", "fp32"))


def markdown(args: argparse.Namespace, results: dict, peaks: dict) -> str:
    flop = 6 * summarize(create_model("resnet20"), (32, 32)).macs  # per training image
    base = results[next(iter(results))]
    base_cpu, base_wall = (statistics.median(base[k]) for k in ("cpu", "wall"))
    lines = [
        f"### ResNet-20 training step ablation, batch {args.batch_size}, {args.threads} "
        "torch thread(s)",
        "",
        f"Command: `python benchmarks/ablation_step.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {describe_machine(machine_info())}  ",
        f"Per row: {args.warmup} untimed steps, then {args.repeats} interleaved rounds of "
        f"{args.steps} steps; ms per image = median over the rounds (min..max beside it) of the "
        "process CPU time (user + system) and of the wall time; ratios are the first row's "
        "median over the row's. Matmul peaks "
        f"({args.peak_size}x{args.peak_size}, same run): "
        + "; ".join(
            f"{kind} {p['cpu'] / 1e9:.1f} GFLOP per CPU second, {p['wall'] / 1e9:.1f} GFLOP/s wall"
            for kind, p in peaks.items()
        )
        + f". A training image is {flop / 1e6:.0f} MFLOP (3 x 2 x forward multiply-adds); each "
        "row's fraction is of the peak in its own arithmetic.",
        "",
        "| setting | CPU ms/image | spread | vs first (CPU) | GFLOP per CPU s | of its peak "
        "(CPU) | wall ms/image | spread | vs first (wall) | first steps: CPU s / wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        cpu, wall = statistics.median(r["cpu"]), statistics.median(r["wall"])
        rate = flop / (cpu / 1e3)
        kind = _precision(name)
        lines.append(
            f"| {r['label']} | {cpu:.2f} | {min(r['cpu']):.2f}..{max(r['cpu']):.2f} | "
            f"**{base_cpu / cpu:.2f}x** | {rate / 1e9:.1f} | "
            f"{100 * rate / peaks[kind]['cpu']:.0f}% {kind} | "
            f"{wall:.2f} | {min(r['wall']):.2f}..{max(r['wall']):.2f} | {base_wall / wall:.2f}x | "
            f"{r['first_cpu_s']:.1f} / {r['first_wall_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=[r for r in ROWS if "bf16" not in r],
                   choices=list(ROWS), help="the first row is the baseline")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--steps", type=int, default=3, help="steps per round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (compiles)")
    p.add_argument("--ref-images", type=int, default=2048)
    p.add_argument("--peak-size", type=int, default=1024)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, help="also write the raw samples to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 8, one short round")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.repeats, args.warmup = 8, 1, 1, 1
        args.ref_images, args.peak_size = 64, 128
    torch.set_num_threads(args.threads)
    results, peaks = measure(args)
    print(markdown(args, results, peaks))
    if args.json:
        payload = {"machine": machine_info(), "peaks": peaks, "rows": results}
        write_text(args.json, json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
