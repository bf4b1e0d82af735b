"""Training throughput: the typical-user reference against resnetlab's training step.

For ResNet-20 the reference is ``reference_train.py`` (written independently of resnetlab: eager
fp32, NCHW, a DataLoader whose Dataset pads, crops, flips and normalises one image at a time). For
other models (ResNet-50 on a GPU) the baseline is resnetlab's own step in eager fp32 NCHW. Every
row is measured in the same process, interleaved over ``--repeats`` rounds, with the machine's
matmul peak timed in the same run. Prints a Markdown block ready for BENCHMARKS.md.

    python benchmarks/bench_train.py                       # ResNet-20, CIFAR-sized, CPU
    python benchmarks/bench_train.py --compile             # + a torch.compile row
    python benchmarks/bench_train.py --model resnet50 --device cuda --batch-size 256 --compile
    python benchmarks/bench_train.py --quick               # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_train  # a sibling script (benchmarks/ is not a package)
from resnetlab.analysis import summarize
from resnetlab.atomic import write_text
from resnetlab.bench.timing import Stats, describe_machine, machine_info, peak_flops, time_windows
from resnetlab.bench.train import make_train_step
from resnetlab.models import create_model, get_spec

PAPER_ITERATIONS = 64000  # §4.2: the CIFAR schedule
REFERENCE_IMAGES = 10000  # enough that no epoch ends inside a timed window at batch 128


def reference_step(batch_size: int, workers: int, device: str, n: int) -> Callable[[], None]:
    """One step of the reference training loop, its batch drawn from its DataLoader."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # (N, H, W, C) as CIFAR's
    labels = rng.integers(0, 10, n)
    dataset = reference_train.AugmentedCIFAR(images, labels)
    loader = reference_train.make_loader(dataset, batch_size, workers)
    model = reference_train.ResNet20().to(device)
    optimizer = reference_train.make_optimizer(model)
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        reference_train.train_step(model, optimizer, x.to(device), y.to(device))

    return step


def rows_to_run(args: argparse.Namespace) -> dict[str, tuple[Callable[[], None], str]]:
    """Every row's step and the precision its peak is stated against, baseline first."""
    common = {"batch_size": args.batch_size, "device": args.device, "data": args.data}
    rows: dict[str, tuple[Callable[[], None], str]] = {}
    if args.model == "resnet20" and args.data == "synthetic":
        name = f"reference (DataLoader, {args.ref_workers} workers, fp32, NCHW)"
        step = reference_step(args.batch_size, args.ref_workers, args.device, args.ref_images)
        rows[name] = (step, "fp32")
    configs = [
        ("resnetlab, fp32, NCHW", {"precision": "fp32", "channels_last": False}),
        ("resnetlab, fp32, channels-last", {"precision": "fp32", "channels_last": True}),
        ("resnetlab, default (auto precision, channels-last)", {}),
    ]
    if args.compile:
        configs.append(("resnetlab, default + torch.compile", {"compile": True}))
    for name, extra in configs:
        setup = make_train_step(args.model, **common, **extra)
        rows[f"{name} -> {setup.precision}"] = (setup.step, setup.precision)
    return rows


def measure(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Images/s of every row, interleaved over the rounds; the matmul peak of the same run."""
    rows = rows_to_run(args)
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(args.repeats):
        for name, (step, _) in rows.items():
            warmup = args.warmup if r == 0 else 1
            seconds = time_windows(
                step, warmup=warmup, windows=args.windows, iters=args.steps, device=args.device
            )
            rates[name].append(Stats.of([args.batch_size / s for s in seconds]).median)
    peak = peak_flops(args.device, 256 if args.quick else None)["flop_per_s"]
    spec = get_spec(args.model)
    macs = summarize(create_model(args.model), spec.input_size).macs
    base = Stats.of(next(iter(rates.values()))).median
    results = []
    for name, (_, precision) in rows.items():
        s = Stats.of(rates[name])
        achieved = 6 * macs * s.median
        results.append(
            {
                "row": name,
                "img_per_s": s.to_dict(),
                "ratio": s.median / base,
                "achieved_flop_per_s": achieved,
                "peak_precision": "bf16" if precision == "bf16" else "fp32",
                "peak_fraction": achieved / peak["bf16" if precision == "bf16" else "fp32"],
                "paper_schedule_min": PAPER_ITERATIONS * args.batch_size / s.median / 60,
            }
        )
    return results, peak


def markdown(args: argparse.Namespace, results: list[dict], peak: dict, info: dict) -> str:
    """The results as a Markdown block: command, machine, peaks, one table row per setting."""
    tag = " (preliminary, shared CPU)" if args.preliminary else ""
    h, w = get_spec(args.model).input_size
    lines = [
        f"### {args.model} training, {h}x{w} {args.data} images, batch {args.batch_size}{tag}",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
        f"Machine: {describe_machine(info)}  ",
        f"Measured peak (a {256 if args.quick else 'large'} square matmul, same run): "
        f"fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s.  ",
        f"Images/s: median over {args.repeats} interleaved rounds of the per-round median of "
        f"{args.windows} windows x {args.steps} steps, each step end to end (batch making and "
        f"augmentation included); spread = min..max of the round medians. FLOP rate = 3 x 2 x "
        "forward multiply-adds x images/s. The 64k-iteration column is the paper's CIFAR "
        "schedule at this speed.",
        "",
        "| setting | images/s (median) | spread | vs first row | achieved GFLOP/s "
        "| of measured peak | 64k iterations |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["img_per_s"]
        lines.append(
            f"| {r['row']} | {s['median']:.1f} | {s['min']:.1f}..{s['max']:.1f} | "
            f"**{r['ratio']:.2f}x** | {r['achieved_flop_per_s'] / 1e9:.1f} | "
            f"{100 * r['peak_fraction']:.1f}% of {r['peak_precision']} | "
            f"{r['paper_schedule_min']:.0f} min |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--data", default="synthetic", help="synthetic or an in-memory dataset")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="steps per timed window")
    p.add_argument("--windows", type=int, default=3, help="timed windows per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the first round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--ref-workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--ref-images", type=int, default=REFERENCE_IMAGES)
    p.add_argument("--compile", action="store_true", help="add a torch.compile row")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    p.add_argument("--preliminary", action="store_true", help="mark the numbers as noisy")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 16, one short round")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.windows, args.warmup, args.repeats = 16, 1, 1, 1, 1
        args.ref_images = 64
    results, peak = measure(args)
    info = machine_info(args.device)
    print(markdown(args, results, peak, info))
    if args.json:
        payload = {"machine": info, "peak_flop_per_s": peak, "rows": results}
        write_text(args.json, json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
