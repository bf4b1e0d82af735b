"""The convolutions of a training step, kernel by kernel, as oneDNN itself times them.

``profile_step.py`` says how much of a step is convolution; this says which convolutions, in
which pass, at what rate, and so how far the step could go if everything else cost nothing.
It builds the loop's own step (``resnetlab.bench.train.make_train_step``), runs ``--steps`` steps
with oneDNN's verbose mode on (``torch.backends.mkldnn.verbose``), reads the line oneDNN prints
for every primitive it executes (its kernel, pass, problem and time), and sums the convolutions
per (pass, layer): milliseconds per step, and GFLOP/s from the problem's size (2 x batch x
input channels per group x output channels x output pixels x kernel pixels, the same count for
the forward pass, the gradient of the input and the gradient of the weights). In the same run,
interleaved over ``--repeats`` rounds and without the verbose mode: the wall time of the
resnetlab step and of the typical loop (``bench_train.reference_step``, its DataLoader in the
process). From these: the convolutions' share of the step, and the **ceiling**: the reference's
time per step over the convolutions' alone, the ratio the step would reach at this oneDNN speed
if batch norm, the elementwise work, the optimizer and the host cost nothing.

    python benchmarks/conv_kernels.py                      # resnet20, batch 128, bf16 CL, 2 threads
    python benchmarks/conv_kernels.py --precision fp32 --steps 5
    python benchmarks/conv_kernels.py --quick              # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablation_step import matmul_peak  # sibling scripts (benchmarks/ is not a package)
from bench_train import reference_step
from resnetlab.atomic import write_text
from resnetlab.bench.timing import describe_machine, machine_info, time_windows
from resnetlab.bench.train import make_train_step

PASSES = {  # oneDNN's prop_kind: what the table calls it
    "forward_training": "forward",
    "forward_inference": "forward",
    "backward_data": "gradient of the input",
    "backward_weights": "gradient of the weights",
}


def problem_flop(desc: str) -> int:
    """The arithmetic of a oneDNN convolution problem such as
    ``mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1`` (``g`` groups, ``d`` depth and
    ``w`` width where given; a missing width or depth takes the height's or 1): 2 x mb x ic/g x
    oc x od x oh x ow x kd x kh x kw."""
    v = problem_fields(desc)
    missing = sorted({"mb", "ic", "oc", "oh", "kh"} - set(v))
    if missing:
        raise ValueError(f"not a oneDNN convolution problem: {desc!r} (no {', '.join(missing)})")
    out = v.get("od", 1) * v["oh"] * v.get("ow", v["oh"])
    kernel = v.get("kd", 1) * v["kh"] * v.get("kw", v["kh"])
    return 2 * v["mb"] * (v["ic"] // v.get("g", 1)) * v["oc"] * out * kernel


def problem_fields(desc: str) -> dict[str, int]:
    """A problem descriptor's letters and numbers: ``{"mb": 128, "ic": 16, ...}``."""
    return {k: int(n) for k, n in re.findall(r"([a-z]+)(\d+)", desc)}


def layer_name(desc: str) -> str:
    """``16->32, 32x32 px, 3x3 stride 2`` for a problem descriptor."""
    v = problem_fields(desc)
    groups = f", {v['g']} groups" if v.get("g", 1) > 1 else ""
    return (
        f"{v['ic']}->{v['oc']}, {v['ih']}x{v.get('iw', v['ih'])} px, "
        f"{v['kh']}x{v.get('kw', v['kh'])} stride {v.get('sh', 1)}{groups}"
    )


def parse_verbose(lines: list[str]) -> list[dict]:
    """The executions in oneDNN verbose lines (``onednn_verbose[,v1],primitive,exec,cpu,kind,
    implementation,prop_kind,memory descriptors,attributes,auxiliary,problem,ms``)."""
    out = []
    for line in lines:
        fields = line.strip().split(",")
        if not fields[0].endswith("_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        if len(fields) < at + 10:
            continue
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        out.append(
            {
                "kind": fields[at + 2],
                "implementation": fields[at + 3],
                "prop_kind": fields[at + 4],
                "problem": fields[-2],
                "ms": ms,
            }
        )
    return out


def by_layer(execs: list[dict], steps: int) -> list[dict]:
    """The convolutions summed per (pass, problem), per step, slowest first."""
    acc: dict[tuple[str, str], dict] = {}
    for e in execs:
        if e["kind"] != "convolution":
            continue
        key = (PASSES.get(e["prop_kind"], e["prop_kind"]), e["problem"])
        row = acc.setdefault(key, {"calls": 0, "ms": 0.0, "implementations": set()})
        row["calls"] += 1
        row["ms"] += e["ms"]
        row["implementations"].add(e["implementation"])
    rows = []
    for (pass_, problem), r in acc.items():
        flop = problem_flop(problem) * r["calls"]
        rows.append(
            {
                "pass": pass_,
                "problem": problem,
                "layer": layer_name(problem),
                "calls_per_step": r["calls"] / steps,
                "ms_per_step": r["ms"] / steps,
                "flop_per_step": flop / steps,
                "gflop_per_s": flop / (r["ms"] / 1e3) / 1e9,
                "implementations": sorted(r["implementations"]),
            }
        )
    return sorted(rows, key=lambda r: -r["ms_per_step"])


def by_pass(layers: list[dict]) -> dict[str, dict[str, float]]:
    """ms per step and GFLOP/s of each pass, over its layers."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"ms_per_step": 0.0, "flop": 0.0})
    for r in layers:
        t = totals[r["pass"]]
        t["ms_per_step"] += r["ms_per_step"]
        t["flop"] += r["flop_per_step"]
    return {
        p: {
            "ms_per_step": t["ms_per_step"],
            "gflop_per_s": t["flop"] / (t["ms_per_step"] / 1e3) / 1e9,
        }
        for p, t in totals.items()
    }


@contextlib.contextmanager
def captured_fd1() -> Iterator[list[str]]:
    """Everything written to file descriptor 1 inside the block (oneDNN prints there from C),
    as lines, in the list it yields once the block ends."""
    lines: list[str] = []
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            yield lines
        finally:
            libc.fflush(None)  # C's buffered stdout, into the file before it is put back
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def verbose_steps(step: Callable[[], None], steps: int) -> list[dict]:
    """oneDNN's executions over ``steps`` calls of ``step``."""
    with captured_fd1() as lines, torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        for _ in range(steps):
            step()
    return parse_verbose(lines)


def wall_ms(step: Callable[[], None], steps: int) -> float:
    """Wall milliseconds per call over ``steps`` calls."""
    return time_windows(step, warmup=0, windows=1, iters=steps)[0] * 1e3


def measure(args: argparse.Namespace) -> dict:
    ours = make_train_step(
        args.model,
        batch_size=args.batch_size,
        precision=args.precision,
        channels_last=not args.nchw,
        image_size=args.image_size,
        compile=args.compile,
        sets=args.set,
    )
    reference = reference_step(args.batch_size, 0, "cpu", args.ref_images)
    for _ in range(args.warmup):
        ours.step()
        reference()
    walls: dict[str, list[float]] = {"resnetlab": [], "reference": []}
    for _ in range(args.repeats):
        walls["reference"].append(wall_ms(reference, args.steps))
        walls["resnetlab"].append(wall_ms(ours.step, args.steps))
    execs = verbose_steps(ours.step, args.steps)
    layers = by_layer(execs, args.steps)
    peak_dtype = torch.bfloat16 if ours.precision == "bf16" else torch.float32
    return {
        "precision": ours.precision,
        "walls_ms": walls,
        "layers": layers,
        "passes": by_pass(layers),
        "conv_ms_per_step": sum(r["ms_per_step"] for r in layers),
        "other_ms_per_step": sum(e["ms"] for e in execs if e["kind"] != "convolution")
        / args.steps,
        "peak": {"dtype": str(peak_dtype).removeprefix("torch."),
                 **matmul_peak(args.peak_size, peak_dtype)},
    }  # fmt: skip


def markdown(args: argparse.Namespace, r: dict) -> str:
    step = statistics.median(r["walls_ms"]["resnetlab"])
    ref = statistics.median(r["walls_ms"]["reference"])
    conv = r["conv_ms_per_step"]
    peak = r["peak"]["wall"] / 1e9
    spread = {k: f"{min(v):.1f}..{max(v):.1f}" for k, v in r["walls_ms"].items()}
    lines = [
        f"### The convolutions of one {args.model} training step, batch {args.batch_size}, "
        f"{r['precision']}, {'NCHW' if args.nchw else 'channels-last'}"
        + (", torch.compile" if args.compile else ""),
        "",
        f"Command: `python benchmarks/conv_kernels.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {describe_machine(machine_info())}  ",
        f"{args.warmup} untimed steps each, then {args.repeats} interleaved rounds of "
        f"{args.steps} steps timed by the wall clock (medians, min..max), then {args.steps} steps "
        f"with oneDNN's verbose mode on, whose kernel times the tables sum per step. Matmul peak "
        f"({args.peak_size}x{args.peak_size} {r['peak']['dtype']}, same run): {peak:.0f} GFLOP/s.",
        "",
        f"- resnetlab step: **{step:.1f} ms** ({spread['resnetlab']}); the typical loop: "
        f"**{ref:.1f} ms** ({spread['reference']}): **{ref / step:.2f}x**.",
        f"- Convolutions, by oneDNN's clock: **{conv:.1f} ms per step**, "
        f"{100 * conv / step:.0f}% of the step; oneDNN's other primitives (reorders, matmul): "
        f"{r['other_ms_per_step']:.1f} ms.",
        f"- **Ceiling** at this convolution speed, all else free: {ref:.1f} / {conv:.1f} = "
        f"**{ref / conv:.2f}x** the typical loop.",
        "",
        "| pass | ms per step | share of the convolutions | GFLOP/s | of the matmul peak |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(PASSES.values()):
        if name in r["passes"]:
            p = r["passes"][name]
            lines.append(
                f"| {name} | {p['ms_per_step']:.1f} | {100 * p['ms_per_step'] / conv:.0f}% | "
                f"{p['gflop_per_s']:.0f} | {100 * p['gflop_per_s'] / peak:.0f}% |"
            )
    lines += [
        "",
        "| layer (in->out channels, input size, kernel) | pass | calls per step | ms per step | "
        "GFLOP/s | oneDNN kernel |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in r["layers"]:
        lines.append(
            f"| {row['layer']} | {row['pass']} | {row['calls_per_step']:g} | "
            f"{row['ms_per_step']:.2f} | {row['gflop_per_s']:.0f} | "
            f"`{' + '.join(row['implementations'])}` |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels-last")
    p.add_argument("--image-size", type=int, help="synthetic image side (default: the model's)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--steps", type=int, default=5, help="steps per round and verbose steps")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--ref-images", type=int, default=2048)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, help="also write the measurements to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 8, 16x16, 1 step")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.repeats, args.warmup = 8, 1, 1, 1
        args.image_size, args.ref_images, args.peak_size = 16, 64, 128
    if not torch.backends.mkldnn.is_available():
        print("skipped: this torch has no oneDNN (torch.backends.mkldnn), whose kernels it times")
        return 0
    torch.set_num_threads(args.threads)
    result = measure(args)
    if args.json:
        write_text(args.json, json.dumps({"machine": machine_info(), **result}, indent=1))
    if not result["layers"]:
        print("no oneDNN convolution ran in these steps (another backend took them)")
        return 0
    print(markdown(args, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
