"""Where a training step's time goes: convolution, BN, elementwise, casts, optimizer, host.

Builds the run ``resnetlab train`` builds (``build_run``; nothing written), profiles ``--steps``
calls of the loop's own ``train_step`` (plus the batch's making by the device loader) with
``torch.profiler`` on the CPU, and sorts every op's self time into a few kinds by the outermost op
it runs under (``aten::conv2d``, ``ConvolutionBackward0``, ...), within the phases that
``train_step`` labels (data, forward, loss, backward, optimizer, statistics). Autocast's casts
and the layout copies (``aten::to``/``_to_copy``/``contiguous``/``clone``, wherever they run)
are a kind of their own; the labels' own self time is the host's (Python and dispatch between
ops). Beside the profiler's elapsed times it measures the process CPU time per step without the
profiler, which stays meaningful on a loaded machine. Prints Markdown for BENCHMARKS.md.

    python benchmarks/profile_step.py                          # resnet20, batch 128, 1 thread
    python benchmarks/profile_step.py --settings fp32-nchw bf16-cl --steps 10
    python benchmarks/profile_step.py --quick                  # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from resnetlab.atomic import write_text
from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.bench.train import bench_config, endless
from resnetlab.train.distributed import World
from resnetlab.train.loop import train_step
from resnetlab.train.run import build_run

SETTINGS = {  # name: (precision, channels_last)
    "fp32-nchw": ("fp32", False),
    "fp32-cl": ("fp32", True),
    "bf16-cl": ("bf16", True),
}
PHASES = ("data", "forward", "loss", "backward", "optimizer", "statistics")
CASTS = ("aten::to", "aten::_to_copy", "aten::contiguous", "aten::clone")
KINDS = (  # (kind, substrings of the outermost op's name), first match wins
    ("convolution", ("conv",)),
    ("batch norm", ("batch_norm", "batchnorm")),
    ("gradient accumulation", ("accumulategrad",)),
    ("pool, fc, loss, error count", ("pool", "linear", "addmm", "mm", "entropy", "softmax",
                                     "nll", "argmax", "ne", "sum", "mean", "t", "view")),
    ("elementwise and shortcuts", ("relu", "threshold", "add", "pad", "slice", "mul",
                                   "select", "index", "where", "flip", "copy", "zero", "fill")),
)  # fmt: skip
ORDER = ("convolution", "batch norm", "elementwise and shortcuts", "casts and layout copies",
         "pool, fc, loss, error count", "gradient accumulation", "optimizer", "statistics",
         "data", "host (Python, dispatch)", "other")  # fmt: skip


def kind_of(names: list[str], phase: str) -> str:
    """The kind of an op's self time, given the op names from the phase label down to it."""
    if not names:
        return "host (Python, dispatch)"
    if any(n in CASTS for n in names):
        return "casts and layout copies"
    if phase in ("optimizer", "statistics", "data"):
        return phase
    outer = names[0].lower()
    for prefix in ("autograd::engine::evaluate_function: ", "aten::", "torch::autograd::"):
        outer = outer.removeprefix(prefix)
    outer = re.sub(r"backward\d*$", "", outer)  # ConvolutionBackward0 -> convolution
    for kind, keys in KINDS:
        if any(k == outer if len(k) <= 2 else k in outer for k in keys):
            return kind
    return "other"


def breakdown(events) -> dict[tuple[str, str], float]:
    """Self time in microseconds by (phase, kind), over the profiled steps."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for e in events:
        chain, node = [], e
        while node is not None and node.name not in PHASES:
            chain.append(node.name)
            node = node.cpu_parent
        if node is None:  # outside the labelled phases: the lr update, the loop's bookkeeping
            totals[("other", "other")] += e.self_cpu_time_total
            continue
        totals[(node.name, kind_of(chain[::-1], node.name))] += e.self_cpu_time_total
    return totals


def profile_setting(args: argparse.Namespace, precision: str, channels_last: bool) -> dict:
    """Profile ``args.steps`` steps of one setting; also its CPU time per step unprofiled."""
    cfg = bench_config(
        args.model,
        batch_size=args.batch_size,
        precision=precision,
        channels_last=channels_last,
        sets=args.set,
    )
    run = build_run(cfg, None, World())
    batches = endless(run.train_loader)
    run.model.train()

    def step() -> None:
        with record_function("data"):
            images, labels = next(batches)
        train_step(run, images, labels)

    for _ in range(args.warmup):
        step()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(args.steps):
        step()
    cpu_ms = (time.process_time() - cpu0) / args.steps * 1e3
    wall_ms = (time.perf_counter() - wall0) / args.steps * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    totals = breakdown(prof.events())
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (phase, kind), us in totals.items():
        by_kind[kind][phase] += us / args.steps / 1e3  # ms per step
    return {
        "cpu_ms_per_step": cpu_ms,
        "wall_ms_per_step": wall_ms,
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
    }


def markdown(args: argparse.Namespace, results: dict[str, dict]) -> str:
    lines = [
        f"### Profile of one {args.model} training step, batch {args.batch_size}, "
        f"{args.threads} thread(s)",
        "",
        f"Command: `python benchmarks/profile_step.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {describe_machine(machine_info())}  ",
        f"Each setting: {args.warmup} warm-up steps, then {args.steps} steps timed by the process "
        f"CPU clock (user + system) without the profiler, then {args.steps} profiled steps; ms are "
        "per step, shares of the profiled total (the profiler's elapsed times, which a loaded "
        "machine inflates evenly; the CPU-time row does not depend on the load).",
        "",
    ]
    names = list(results)
    lines += [
        "| kind | "
        + " | ".join(f"{n} ms (fwd / bwd)" for n in names)
        + " | "
        + " | ".join(f"{n} share" for n in names)
        + " |",
        "|---|" + "---:|" * (2 * len(names)),
    ]
    totals = {n: sum(sum(p.values()) for p in r["by_kind"].values()) for n, r in results.items()}
    for kind in ORDER:
        if not any(kind in r["by_kind"] for r in results.values()):
            continue
        cells, shares = [], []
        for n, r in results.items():
            phases = r["by_kind"].get(kind, {})
            ms = sum(phases.values())
            fwd = phases.get("forward", 0.0) + phases.get("loss", 0.0)
            split = f" ({fwd:.1f} / {phases.get('backward', 0.0):.1f})" if fwd else ""
            cells.append(f"{ms:.1f}{split}")
            shares.append(f"{100 * ms / totals[n]:.1f}%")
        lines.append(f"| {kind} | " + " | ".join(cells) + " | " + " | ".join(shares) + " |")
    lines.append(
        "| **profiled total** | "
        + " | ".join(f"**{totals[n]:.1f}**" for n in names)
        + " |"
        + " |" * len(names)
    )
    lines.append(
        "| process CPU time per step, unprofiled | "
        + " | ".join(f"{r['cpu_ms_per_step']:.1f}" for r in results.values())
        + " |"
        + " |" * len(names)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, help="also write the breakdown to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 8, 1 step, 16x16")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.warmup = 8, 1, 1
        args.set = [*args.set, "data.image_size=16"]
    torch.set_num_threads(args.threads)
    results = {name: profile_setting(args, *SETTINGS[name]) for name in args.settings}
    print(markdown(args, results))
    if args.json:
        write_text(
            args.json, json.dumps({"machine": machine_info(), "settings": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
