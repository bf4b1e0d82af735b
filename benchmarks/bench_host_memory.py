"""Freed host memory kept for reuse (``host_memory: keep``) against the C library's own way
(``system``): the training step's images/s and page faults, in paired processes.

The setting belongs to the whole process and cannot be undone in it, so each measurement is its
own ``resnetlab bench train --json`` process; the two settings run in pairs, in turn (the order
swapped every pair, so that neither always runs on a machine warmed by the other), and each
pair's ratio keep / system is taken, which holds when the machine's speed drifts between pairs.
Reports the median images/s and minor page faults per step of each setting over the pairs
(min..max), and the median, min..max and sign count of the pair ratios.

    python benchmarks/bench_host_memory.py                     # resnet20, batch 128, 6 pairs
    python benchmarks/bench_host_memory.py --image-size 16     # progressive resizing's 16 px
    python benchmarks/bench_host_memory.py --quick             # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from resnetlab.atomic import write_text
from resnetlab.bench.timing import describe_machine

SETTINGS = ("system", "keep")


def bench_command(args: argparse.Namespace, setting: str) -> list[str]:
    """The ``resnetlab bench train`` process of one measurement."""
    command = [sys.executable, "-m", "resnetlab", "bench", "train", "--json",
               "--model", args.model, "--preset", args.preset,
               "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--windows", str(args.windows), "--warmup", str(args.warmup),
               "--set", f"host_memory={setting}"]  # fmt: skip
    if args.image_size:
        command += ["--image-size", str(args.image_size)]
    for s in args.set:
        command += ["--set", s]
    return command


def measure_once(args: argparse.Namespace, setting: str) -> dict:
    """One process's result (``bench_train``'s record)."""
    done = subprocess.run(bench_command(args, setting), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"resnetlab bench train failed ({setting}): {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace) -> list[dict[str, dict]]:
    """Every pair's two results, the order swapped every other pair."""
    pairs = []
    for i in range(args.pairs):
        order = SETTINGS if i % 2 == 0 else SETTINGS[::-1]
        pairs.append({setting: measure_once(args, setting) for setting in order})
    return pairs


def summary(pairs: list[dict[str, dict]]) -> dict:
    """Per setting the images/s and faults per step; per pair the ratio keep / system."""
    out: dict = {}
    for setting in SETTINGS:
        rates = [p[setting]["img_per_s"] for p in pairs]
        faults = [p[setting]["minor_faults_per_step"] for p in pairs]
        out[setting] = {"img_per_s": rates, "faults_per_step": faults}
    out["ratios"] = [p["keep"]["img_per_s"] / p["system"]["img_per_s"] for p in pairs]
    return out


def spread(values: list[float], digits: int = 1) -> str:
    return f"{min(values):.{digits}f}..{max(values):.{digits}f}"


def markdown(args: argparse.Namespace, pairs: list[dict[str, dict]], s: dict) -> str:
    first = pairs[0]["system"]
    h, w = first["image_size"]
    ratios = s["ratios"]
    lines = [
        f"### Host memory kept for reuse: {args.model}, batch {args.batch_size}, {h}x{w}, "
        f"{first['precision']}",
        "",
        f"Command: `python benchmarks/bench_host_memory.py {' '.join(sys.argv[1:])}`".rstrip()
        + "  ",
        f"Machine: {describe_machine(first['machine'])}  ",
        f"{args.pairs} pairs of `resnetlab bench train` processes (preset `{args.preset}`, "
        f"{args.warmup} untimed steps, then the median of {args.windows} windows x {args.steps} "
        "steps each), the two settings in turn, the order swapped every pair; medians over the "
        "pairs, min..max beside them.",
        "",
        "| `host_memory` | images/s | spread | minor page faults per step | spread |",
        "|---|---:|---:|---:|---:|",
    ]
    for setting in SETTINGS:
        r = s[setting]
        lines.append(
            f"| `{setting}` | {statistics.median(r['img_per_s']):.1f} | {spread(r['img_per_s'])} "
            f"| {statistics.median(r['faults_per_step']):.0f} | "
            f"{spread(r['faults_per_step'], 0)} |"
        )
    faster = sum(r > 1 for r in ratios)
    lines += [
        "",
        f"Pair by pair, keep / system: median **{statistics.median(ratios):.3f}x** "
        f"({spread(ratios, 3)}); faster with `keep` in {faster} of {len(ratios)} pairs.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--preset", default="fast")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, help="synthetic image side (default: the model's)")
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--steps", type=int, default=20, help="steps per timed window")
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, help="also write every process's record to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 8, 16x16, 1 pair")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.image_size, args.pairs = 8, 16, 1
        args.steps, args.windows, args.warmup = 2, 2, 1
    pairs = measure(args)
    s = summary(pairs)
    print(markdown(args, pairs, s))
    if args.json:
        write_text(args.json, json.dumps({"pairs": pairs, "summary": s}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
