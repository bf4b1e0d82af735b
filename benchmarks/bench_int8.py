"""int8 inference through PT2E (x86 inductor quantizer) against eager fp32, on real images.

Takes a trained CIFAR checkpoint (``--checkpoint RUN``) or trains ResNet-20 briefly on the JPEG
copy of CIFAR-10 first (``--train-iterations N``, fp32; the run folder is ``--out``). Calibrates
``resnetlab.export.int8.quantize_int8`` on ``--calibration`` images of the run's train split,
then scores every test image with both forms: top-1 agreement (the target is at least 99%) and
each form's test accuracy. Latency is the process CPU time per call (user + system, median of
``--calls`` calls after warm-up) at batch 1 and 32 with ``--threads`` torch threads, which a loaded
machine does not inflate; on a quiet machine the wall time (also printed) is the number to quote.
Prints Markdown for BENCHMARKS.md.

    python benchmarks/bench_int8.py --train-iterations 400 --out runs/int8-r20
    python benchmarks/bench_int8.py --checkpoint runs/int8-r20 --threads 2
    python benchmarks/bench_int8.py --quick      # digits, an untrained-for-long tiny net
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from resnetlab.atomic import write_text
from resnetlab.bench.timing import describe_machine, machine_info
from resnetlab.evaluation.data import eval_loader, load_eval_split
from resnetlab.export.int8 import quantize_int8, top1_agreement
from resnetlab.train import fit, load_config
from resnetlab.train.weights import model_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cifar10-jpeg"


def train_briefly(args: argparse.Namespace) -> Path:
    sets = [f"data.root={args.data_dir}", "data.name=cifar10-jpeg", "model.name=resnet20",
            f"iterations={args.train_iterations}", "precision=fp32", "channels_last=false",
            "eval_train_at_end=false", f"data.train_fraction={args.fraction}"]  # fmt: skip
    if args.quick:
        sets = ["data.name=digits", "data.image_size=16", "model.name=cifar_resnet",
                "model.overrides.depth=8", "iterations=60", "eval_train_at_end=false",
                "data.augment=false"]  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):
        fit(load_config(preset="fast", sets=[*sets, "precision=fp32"]), args.out)
    return args.out


def logits_of(forward, loader) -> tuple[torch.Tensor, torch.Tensor]:
    outs, labels = [], []
    with torch.no_grad():
        for images, y in loader.epoch(0):
            outs.append(forward(images))
            labels.append(y)
    return torch.cat(outs), torch.cat(labels)


def cpu_latency(forward, x: torch.Tensor, calls: int) -> dict[str, float]:
    """Median CPU ms and wall ms per call, after two warm-up calls."""
    forward(x)
    forward(x)
    cpu, wall = [], []
    for _ in range(calls):
        c0, w0 = time.process_time(), time.perf_counter()
        forward(x)
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall),
            "cpu_min": min(cpu), "cpu_max": max(cpu)}  # fmt: skip


def measure(args: argparse.Namespace, run: Path) -> dict:
    model, ckpt = model_from_checkpoint(run)
    test = load_eval_split(ckpt["data"], ckpt["config"], "test")
    train = load_eval_split(ckpt["data"], ckpt["config"], "train")
    cpu = torch.device("cpu")
    calib = [x for i, (x, _) in enumerate(eval_loader(train, batch_size=32, device=cpu).epoch(0))
             if i * 32 < args.calibration]  # fmt: skip
    c0, w0 = time.process_time(), time.perf_counter()
    int8 = quantize_int8(model, calib, keep_fp32=args.keep_fp32)
    quantize = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}

    def fp32(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    loader = eval_loader(test, batch_size=100, device=cpu)
    ref, labels = logits_of(fp32, loader)
    got, _ = logits_of(int8, loader)
    h, w = ckpt["data"]["image_size"]
    latency = {}
    for b in args.batch_sizes:
        x = torch.randn(b, ckpt["data"]["channels"], h, w)
        latency[b] = {
            "fp32": cpu_latency(fp32, x, args.calls),
            "int8": cpu_latency(int8, x, args.calls),
        }
    return {
        "model": ckpt["model"]["name"],
        "data": ckpt["data"]["name"],
        "test_images": len(labels),
        "agreement": top1_agreement(ref, got),
        "fp32_acc": (ref.argmax(1) == labels).double().mean().item(),
        "int8_acc": (got.argmax(1) == labels).double().mean().item(),
        "quantize": quantize,
        "latency": latency,
    }


def markdown(args: argparse.Namespace, r: dict) -> str:
    lines = [
        f"### int8 (PT2E, X86InductorQuantizer) against eager fp32: {r['model']} on {r['data']}",
        "",
        f"Command: `python benchmarks/bench_int8.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {describe_machine(machine_info())}  ",
        f"Top-1 agreement on all {r['test_images']} test images: **{100 * r['agreement']:.2f}%** "
        f"(target >= 99%); test accuracy fp32 {100 * r['fp32_acc']:.2f}%, int8 "
        f"{100 * r['int8_acc']:.2f}%. Kept in fp32: {', '.join(args.keep_fp32) or 'nothing'}. "
        f"Calibration on {args.calibration} train images; quantize "
        f"and compile: {r['quantize']['cpu_s']:.0f} CPU s ({r['quantize']['wall_s']:.0f} wall s). "
        f"Latency: median of {args.calls} calls after 2 warm-up calls, process CPU time "
        "(min..max beside it) and wall time.",
        "",
        "| batch | form | CPU ms per call | spread | vs fp32 (CPU) | wall ms per call |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for b, forms in r["latency"].items():
        base = forms["fp32"]["cpu_ms"]
        for name, t in forms.items():
            lines.append(
                f"| {b} | {name} | {t['cpu_ms']:.2f} | {t['cpu_min']:.2f}..{t['cpu_max']:.2f} | "
                f"**{base / t['cpu_ms']:.2f}x** | {t['wall_ms']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, help="a trained run folder or checkpoint")
    p.add_argument("--train-iterations", type=int, default=400)
    p.add_argument("--fraction", type=float, default=1.0, help="data.train_fraction of training")
    p.add_argument("--data-dir", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "int8-resnet20")
    p.add_argument("--calibration", type=int, default=512, help="train images for calibration")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--keep-fp32", nargs="*", default=[], help="modules left in fp32: conv1 fc")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="smoke run: digits, a tiny net")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.calibration, args.calls, args.batch_sizes = 64, 3, [1, 8]
    if args.checkpoint is None and not args.quick and not (args.data_dir / "train").is_dir():
        print(f"skipped: the CIFAR-10 JPEG copy is not at {args.data_dir}")
        return 0
    run = args.checkpoint or train_briefly(args)
    result = measure(args, run)
    print(markdown(args, result))
    if args.json:
        write_text(args.json, json.dumps(result, indent=1))
    return 0 if result["agreement"] >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
