"""ResNet-50 inference latency: the eager fp32 reference against resnetlab's faster forms.

The reference (``reference_infer.py``, written independently of resnetlab) and every variant of
``resnetlab.bench.infer`` run on the same weights and the same input batch, in the same process,
interleaved over ``--repeats`` rounds so that drift in machine load hits them alike. Each variant's
outputs are checked against the reference's. Prints a Markdown block ready for BENCHMARKS.md.

    python benchmarks/bench_infer.py                      # ResNet-50, 224x224, batch 1 and 32
    python benchmarks/bench_infer.py --quick              # a smoke run: ResNet-20, seconds
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_infer  # a sibling script (benchmarks/ is not a package)
import reference_train
from resnetlab.atomic import write_text
from resnetlab.bench.infer import (
    FP32_TOLERANCE,
    TOLERANCE,
    VARIANTS,
    compare_outputs,
    make_variant,
)
from resnetlab.bench.timing import (
    Stats,
    describe_machine,
    machine_info,
    time_calls,
)
from resnetlab.models import create_model


def reference_model(name: str, ours: torch.nn.Module) -> torch.nn.Module:
    """The independent reference network holding the weights of ``ours``."""
    if name == "resnet50":
        ref = reference_infer.ResNet50()
        ref.load_state_dict(ours.state_dict())
    elif name == "resnet20":
        ref = reference_train.ResNet20()
        reference_train.load_resnetlab_weights(ref, ours.state_dict())
    else:
        raise SystemExit(f"no reference for {name!r}; use resnet50 or resnet20")
    return ref.eval()


def bench_batch(args: argparse.Namespace, batch: int, workdir: Path) -> list[dict]:
    """Every variant at one batch size: latency per round, speed-up and output check."""
    torch.manual_seed(0)
    ours = create_model(args.model).eval()
    ref = reference_model(args.model, ours)
    size = args.image_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    want = reference_infer.predict(ref, x)
    forms = {"reference": lambda images: reference_infer.predict(ref, images)}
    rows = {}
    for name in args.variants:
        fn = make_variant(name, ours, x, workdir)
        if isinstance(fn, str):
            rows[name] = {"variant": name, "batch": batch, "status": "unavailable", "reason": fn}
        else:
            forms[name] = fn
    iters = args.iters or max(3, round(20 / batch))
    medians: dict[str, list[float]] = {name: [] for name in forms}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for name, fn in forms.items():
                seconds = time_calls(lambda fn=fn: fn(x), warmup=args.warmup, iters=iters)
                medians[name].append(Stats.of(seconds).median * 1e3)
        checks = {name: compare_outputs(fn(x), want) for name, fn in forms.items()}
    base = Stats.of(medians["reference"]).median
    for name in forms:
        lat = Stats.of(medians[name])
        tol = TOLERANCE.get(name, FP32_TOLERANCE)
        ok = checks[name]["max_rel_err"] <= tol
        rows[name] = {
            "variant": name,
            "batch": batch,
            "status": "ok" if ok else "mismatch",
            "latency_ms": lat.to_dict(),
            "img_per_s": batch / (lat.median / 1e3),
            "speedup": base / lat.median,
            "tolerance": tol,
            "iters": iters,
            **checks[name],
        }
    return [rows[name] for name in ("reference", *args.variants)]


def markdown(args: argparse.Namespace, rows: list[dict], info: dict) -> str:
    """The results as a Markdown block: command, machine, one table row per variant."""
    tag = " (preliminary, shared CPU)" if args.preliminary else ""
    lines = [
        f"### {args.model}, {args.image_size}x{args.image_size}, inference{tag}",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
        f"Machine: {describe_machine(info)}  ",
        f"Each latency: median over {args.repeats} rounds of the per-round median of timed "
        f"calls (after {args.warmup} warm-up calls); spread = min..max of the round medians. "
        "Max rel. error = max |output - reference| / max |reference|.",
        "",
        "| batch | variant | latency ms (median) | spread ms | images/s | vs reference "
        "| max rel. error | top-1 agree |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["status"] == "unavailable":
            reason = r["reason"].replace("|", "/")
            lines.append(f"| {r['batch']} | {r['variant']} | unavailable: {reason} |" + " |" * 5)
            continue
        lat = r["latency_ms"]
        flag = "" if r["status"] == "ok" else " **MISMATCH**"
        lines.append(
            f"| {r['batch']} | {r['variant']} | {lat['median']:.1f} | "
            f"{lat['min']:.1f}..{lat['max']:.1f} | {r['img_per_s']:.1f} | "
            f"**{r['speedup']:.2f}x** | {r['max_rel_err']:.1e}{flag} | {r['top1_agreement']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50", choices=["resnet50", "resnet20"])
    p.add_argument("--image-size", type=int, default=None, help="default: 224 (32 for resnet20)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS[1:]), choices=VARIANTS)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--iters", type=int, default=None, help="timed calls per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per round")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    p.add_argument("--preliminary", action="store_true", help="mark the numbers as noisy")
    p.add_argument("--quick", action="store_true", help="smoke run: resnet20, batch 2, 1 round")
    args = p.parse_args(argv)
    if args.quick:
        args.model, args.batch_sizes, args.repeats, args.iters, args.warmup = (
            "resnet20",
            [2],
            1,
            2,
            1,
        )
    args.image_size = args.image_size or (224 if args.model == "resnet50" else 32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch_sizes:
            rows += bench_batch(args, batch, Path(tmp))
    info = machine_info()
    print(markdown(args, rows, info))
    if args.json:
        write_text(args.json, json.dumps({"machine": info, "rows": rows}, indent=1))
    return 1 if any(r["status"] == "mismatch" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
