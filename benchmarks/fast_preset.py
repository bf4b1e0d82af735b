"""Accuracy per minute of the `fast` preset against plain SGD, ResNet-20 on digits.

Both arms train the same model on the same data for the same epochs and batch; `fast` adds its
one-cycle lr, Nesterov momentum, label smoothing 0.1, bf16 (where the CPU has it) and
channels-last, while the baseline keeps a constant lr 0.1 with plain momentum in fp32. Every run
evaluates on the test split after each epoch; the table gives the final test accuracy, the wall
time of the run (training and its evaluations: ``summary.json``'s ``wall_s``) and the wall time at
which the test accuracy first reached the target, as mean ± standard deviation over the seeds.
Prints a Markdown block ready to paste into RESULTS.md.

    python benchmarks/fast_preset.py                        # 16 and 32 px, seeds 0 1 2
    python benchmarks/fast_preset.py --sizes 16 --seeds 0   # one quick pair
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

import resnetlab
from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.train import fit, load_config

# Flips and 4-pixel shifts do not suit digits (a mirrored 2 is no 2): no augmentation in either arm.
COMMON = ["model.name=resnet20", "data.name=digits", "data.augment=false", "batch_size=64",
          "log_every=1000", "eval_train_at_end=false"]  # fmt: skip
ARMS = {
    "fast": ("fast", []),
    "plain SGD": (None, ["optim.lr=0.1", "schedule.kind=constant", "precision=fp32"]),
}


def run(arm: str, size: int, seed: int, epochs: int, out: Path) -> dict:
    """Train one arm; return its summary and its (wall seconds, test accuracy) curve."""
    preset, sets = ARMS[arm]
    cfg = load_config(
        preset=preset,
        sets=[*COMMON, *sets, f"data.image_size={size}", f"seed={seed}", f"epochs={epochs}"],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the run's log lines; stdout gets the table
        summary = fit(cfg, out)
    curve = [
        (r["wall_s"], 1 - r["test_error"])
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "eval"
    ]
    return {"summary": summary, "curve": curve}


def mean_sd(values: list[float], fmt: str) -> str:
    if not values:
        return "not reached"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(sd)}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32], help="image sides")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--target", type=float, default=0.95, help="test accuracy to time")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for arm in ARMS:
                results = [
                    run(arm, size, seed, args.epochs, Path(tmp) / f"{arm}-{size}-{seed}")
                    for seed in args.seeds
                ]
                rows.append(_row(arm, size, results, args.target))
    print(_markdown(args, rows))
    return 0


def _row(arm: str, size: int, results: list[dict], target: float) -> str:
    acc = [100 * (1 - r["summary"]["final"]["test_error"]) for r in results]
    wall = [r["summary"]["wall_s"] for r in results]
    hits = [next((s for s, a in r["curve"] if a >= target), None) for r in results]
    reached = [h for h in hits if h is not None]
    precision = results[0]["summary"]["precision"]
    return (
        f"| {arm} | {size}x{size} | {precision} | {mean_sd(acc, '{:.2f}')}% | "
        f"{mean_sd(wall, '{:.1f}')} | {mean_sd(reached, '{:.1f}')} ({len(reached)}/{len(hits)}) |"
    )


def _markdown(args: argparse.Namespace, rows: list[str]) -> str:
    return "\n".join(
        [
            f"Command: `python benchmarks/fast_preset.py {' '.join(sys.argv[1:])}`".rstrip(),
            f"Machine: {describe_machine(machine_info())}; resnetlab {resnetlab.__version__}. "
            f"ResNet-20 on digits, {args.epochs} epochs at batch 64, no augmentation; seeds "
            f"{' '.join(map(str, args.seeds))}, mean ± sd.",
            "",
            f"| arm | images | precision | final test accuracy | wall s | wall s to "
            f"{100 * args.target:.0f}% (runs) |",
            "|---|---|---|---:|---:|---:|",
            *rows,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
