"""``resnetlab bench train|infer|peak``: training throughput, inference latency, peak FLOP rate."""

from __future__ import annotations

import argparse
import json

from resnetlab.cli.options import add_recipe_arguments
from resnetlab.errors import ConfigError
from resnetlab.evaluation.loading import resolve_device
from resnetlab.train.config import FLAGS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure training throughput, inference latency, peak FLOP/s")
    modes = p.add_subparsers(dest="mode", metavar="MODE", parser_class=type(p))
    modes.required = True

    t = modes.add_parser(
        "train",
        help="steady-state training images/s, memory and FLOP rate",
        description="Time the training step `resnetlab train` takes, on a run built from the "
        "same config (--preset, --config, --set and the flags below, as train resolves them). "
        "Without --preset or --config: batch 128, precision auto, channels-last, the paper's SGD.",
    )
    add_recipe_arguments(
        t, data="synthetic", flags=("model", "image_size", "precision", "seed"), checked=False
    )
    t.set_defaults(model="resnet20", device="cpu")
    t.add_argument(
        "--steps", type=int, default=20, metavar="N", help="steps per timed window (default: 20)"
    )
    t.add_argument("--windows", type=int, default=5, metavar="W", help="timed windows (default: 5)")
    t.add_argument("--warmup", type=int, default=5, metavar="K", help="untimed steps (default: 5)")
    t.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC model and batches (default: on, or the preset's)",
    )
    t.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model (default: off, or the preset's)",
    )
    _common(t, device=False)
    t.set_defaults(func=run_train)

    i = modes.add_parser("infer", help="latency of eager, BN-folded, bf16, compiled, ONNX forms")
    i.add_argument("--model", default="resnet50", help="a registered model (default: resnet50)")
    i.add_argument("--batch-size", type=int, default=1, metavar="B", help="default: 1")
    i.add_argument("--image-size", type=int, metavar="S", help="input side (default: the model's)")
    i.add_argument(
        "--variants",
        default=None,
        metavar="LIST",
        help="comma-separated: eager,folded,bf16,compiled,compiled-bf16,onnxruntime (default: all)",
    )
    i.add_argument("--iters", type=int, default=20, metavar="N", help="timed calls (default: 20)")
    i.add_argument("--warmup", type=int, default=3, metavar="K", help="untimed calls (default: 3)")
    _common(i)
    i.set_defaults(func=run_infer)

    k = modes.add_parser("peak", help="the machine's peak: FLOP/s of a large matmul")
    k.add_argument("--size", type=int, metavar="N", help="matrix side (2048 CPU, 8192 GPU)")
    _common(k)
    k.set_defaults(func=run_peak)


def _common(p: argparse.ArgumentParser, device: bool = True) -> None:
    if device:
        p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in seconds (train: batch 8, 2 windows of 2 steps; infer: 2 calls; "
        "peak: a 256x256 matmul), overriding those options; the numbers mean nothing",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1; got {value}")


def _not_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 0; got {value}")


def run_train(args: argparse.Namespace) -> int:
    from resnetlab.bench.train import bench_train, format_train

    _positive(batch_size=args.batch_size, steps=args.steps, windows=args.windows)
    _not_negative(warmup=args.warmup)
    if args.quick:
        args.batch_size, args.steps, args.windows, args.warmup = 8, 2, 2, 1
    options = {dest: getattr(args, dest) for dest in FLAGS if hasattr(args, dest)}
    del options["model"]
    result = bench_train(
        args.model,
        steps=args.steps,
        windows=args.windows,
        warmup=args.warmup,
        peak_size=256 if args.quick else None,
        preset=args.preset,
        config=args.config,
        sets=args.sets,
        **options,
    )
    print(json.dumps(result) if args.json else format_train(result))
    return 0


def run_infer(args: argparse.Namespace) -> int:
    from resnetlab.bench.infer import VARIANTS, bench_infer, format_infer

    _positive(batch_size=args.batch_size, iters=args.iters, image_size=args.image_size)
    _not_negative(warmup=args.warmup)
    variants = tuple(v.strip() for v in args.variants.split(",")) if args.variants else VARIANTS
    resolve_device(args.device)  # cuda is a choice; it must be here too
    if args.quick:
        args.iters, args.warmup = 2, 1
    result = bench_infer(
        args.model,
        args.batch_size,
        variants=variants,
        device=args.device,
        image_size=args.image_size,
        warmup=args.warmup,
        iters=args.iters,
    )
    print(json.dumps(result) if args.json else format_infer(result))
    mismatched = [n for n, r in result["variants"].items() if r["status"] == "mismatch"]
    return 1 if mismatched else 0


def run_peak(args: argparse.Namespace) -> int:
    from resnetlab.bench.timing import peak_flops

    _positive(size=args.size)
    resolve_device(args.device)
    size = 256 if args.quick else args.size
    result = peak_flops(args.device, size)
    if args.json:
        print(json.dumps(result))
    else:
        for dtype, rate in result["flop_per_s"].items():
            print(f"{dtype:5s} {rate / 1e9:10.1f} GFLOP/s  ({result['size']}x{result['size']} mm)")
    return 0
