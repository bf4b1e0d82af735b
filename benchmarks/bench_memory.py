"""Memory over a long training run: does the resident set stay flat?

Runs ``--steps`` ResNet-20 training steps (the step ``resnetlab bench train`` times, default
settings, small images so that it takes minutes) and samples the process's current resident set
(``/proc/self/statm``) and its peak (``ru_maxrss``) every ``--every`` steps. A leak (tensors kept
across steps, a growing cache) shows as growth after the warm-up; the report gives the growth
between ``--from-step`` and the end and exits 1 when it exceeds ``--tolerance-mib``.

    python benchmarks/bench_memory.py                     # 2,000 steps, 16x16 images, batch 32
    python benchmarks/bench_memory.py --quick             # a smoke run
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from resnetlab.atomic import write_text
from resnetlab.bench.timing import current_rss_mib, describe_machine, machine_info, peak_rss_mib
from resnetlab.bench.train import make_train_step


def sample_memory(args: argparse.Namespace) -> tuple[list[dict], str]:
    """Train ``args.steps`` steps; a memory sample every ``args.every`` steps (and at step 0)."""
    setup = make_train_step(
        "resnet20",
        batch_size=args.batch_size,
        image_size=args.image_size,
        precision=args.precision,
        device=args.device,
    )
    start = time.perf_counter()
    samples = [{"step": 0, "rss_mib": current_rss_mib(), "peak_rss_mib": peak_rss_mib(), "s": 0.0}]
    for step in range(1, args.steps + 1):
        setup.step()
        if step % args.every == 0 or step == args.steps:
            samples.append(
                {
                    "step": step,
                    "rss_mib": current_rss_mib(),
                    "peak_rss_mib": peak_rss_mib(),
                    "s": time.perf_counter() - start,
                }
            )
    return samples, setup.precision


def growth(samples: list[dict], from_step: int) -> dict:
    """Current and peak RSS growth from the first sample at or after ``from_step`` to the last."""
    first = next(s for s in samples if s["step"] >= from_step)
    last = samples[-1]
    return {
        "from_step": first["step"],
        "to_step": last["step"],
        "rss_growth_mib": last["rss_mib"] - first["rss_mib"],
        "peak_growth_mib": last["peak_rss_mib"] - first["peak_rss_mib"],
    }


def markdown(args: argparse.Namespace, samples: list[dict], g: dict, precision: str) -> str:
    """The curve and the verdict as a Markdown block."""
    flat = max(g["rss_growth_mib"], g["peak_growth_mib"]) <= args.tolerance_mib
    verdict = "flat" if flat else "GROWING"
    lines = [
        f"### Memory of a ResNet-20 training run: {args.steps} steps, {args.image_size}x"
        f"{args.image_size} synthetic images, batch {args.batch_size}, {precision}",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
        f"Machine: {describe_machine(machine_info(args.device))}  ",
        f"Growth from step {g['from_step']} to {g['to_step']}: current RSS "
        f"{g['rss_growth_mib']:+.1f} MiB, peak RSS {g['peak_growth_mib']:+.1f} MiB "
        f"-> **{verdict}** "
        f"(tolerance {args.tolerance_mib:g} MiB).",
        "",
        "| step | current RSS MiB | peak RSS MiB | seconds |",
        "|---:|---:|---:|---:|",
    ]
    for s in samples:
        lines.append(
            f"| {s['step']} | {s['rss_mib']:.1f} | {s['peak_rss_mib']:.1f} | {s['s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=100, help="steps between samples")
    p.add_argument("--from-step", type=int, default=500, help="growth is measured from here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--precision", default="auto", choices=["fp32", "bf16", "fp16", "auto"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--tolerance-mib", type=float, default=16.0, help="allowed growth")
    p.add_argument("--json", type=Path, help="also write the samples to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: 40 steps of 8x8, batch 4")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.every, args.from_step, args.batch_size, args.image_size = 40, 10, 10, 4, 8
    if not 0 <= args.from_step <= args.steps:
        p.error(f"--from-step must be between 0 and --steps ({args.steps})")
    samples, precision = sample_memory(args)
    g = growth(samples, args.from_step)
    print(markdown(args, samples, g, precision))
    if args.json:
        write_text(args.json, json.dumps({"samples": samples, "growth": g}, indent=1))
    return 0 if max(g["rss_growth_mib"], g["peak_growth_mib"]) <= args.tolerance_mib else 1


if __name__ == "__main__":
    sys.exit(main())
