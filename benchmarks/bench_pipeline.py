"""Input pipeline vs. ResNet-20 training throughput, measured in the same run.

Issue 3 asks that the CIFAR pipeline (on-device pad-4 random crop, flip and normalisation of
batches gathered from a resident uint8 tensor) deliver at least 20x the images per second that
ResNet-20 trains at on the same machine, so that it is never the bottleneck. Both rates are the
median over several timed windows after a warm-up; the script prints a ready-to-paste markdown
table with the machine, versions and command.

    python benchmarks/bench_pipeline.py                      # CIFAR-shaped random data
    python benchmarks/bench_pipeline.py --data cifar10-jpeg --data-dir ../shared/data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from resnetlab.data import ArrayDataset, DatasetInfo, DeviceLoader, load_dataset
from resnetlab.models import create_model


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.manual_seed(0)
    ds = _dataset(args)
    loader = DeviceLoader(
        ds,
        args.batch_size,
        train=True,
        device=args.device,
        seed=0,
        channels_last=args.channels_last,
    )
    pipe = _pipeline_rates(loader, args.windows, args.pipeline_batches)
    train = _train_rates(ds, args)
    result = {
        "data": ds.info.name,
        "samples": len(ds),
        "batch_size": args.batch_size,
        "device": args.device,
        "pipeline_img_s": _summary(pipe),
        "resnet20_train_img_s": _summary(train),
        "ratio": statistics.median(pipe) / statistics.median(train),
        "machine": _machine(),
        "command": "python " + " ".join(sys.argv),
    }
    print(json.dumps(result) if args.json else _markdown(result))
    return 0


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic", help="'synthetic' or a dataset name")
    p.add_argument("--data-dir", help="the dataset's folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--windows", type=int, default=5, help="timed windows per measurement")
    p.add_argument("--pipeline-batches", type=int, default=100, help="batches per window")
    p.add_argument("--train-steps", type=int, default=5, help="training steps per window")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def _dataset(args) -> ArrayDataset:
    if args.data != "synthetic":
        return load_dataset(args.data, "train", root=args.data_dir)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (50000,), generator=gen)
    info = DatasetInfo(
        "synthetic", tuple(map(str, range(10))), (32, 32), 3, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    )
    return ArrayDataset(images, labels, info)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _pipeline_rates(loader: DeviceLoader, windows: int, per_window: int) -> list[float]:
    """Images per second of the loader alone, one value per window (after one warm-up)."""
    rates, epoch = [], 0
    batches = loader.epoch(epoch)
    for w in range(windows + 1):
        _sync(str(loader.device))
        start, count = time.perf_counter(), 0
        for _ in range(per_window):
            try:
                images, _ = next(batches)
            except StopIteration:  # a new epoch: its permutation and crops are part of the cost
                epoch += 1
                batches = loader.epoch(epoch)
                images, _ = next(batches)
            count += images.shape[0]
        _sync(str(loader.device))
        if w:  # window 0 warms up
            rates.append(count / (time.perf_counter() - start))
    return rates


def _train_rates(ds: ArrayDataset, args) -> list[float]:
    """Images per second of ResNet-20 SGD steps (fp32) on a fixed batch, one value per window."""
    model = create_model("resnet20", num_classes=len(ds.info.classes)).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = DeviceLoader(ds, args.batch_size, train=True, device=args.device)
    images, labels = next(loader.epoch(0))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    rates = []
    for w in range(args.windows + 1):
        _sync(args.device)
        start = time.perf_counter()
        for _ in range(args.train_steps):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(args.device)
        if w:
            rates.append(args.train_steps * images.shape[0] / (time.perf_counter() - start))
    return rates


def _summary(rates: list[float]) -> dict:
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "windows": len(rates),
    }


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _markdown(r: dict) -> str:
    m = r["machine"]
    p, t = r["pipeline_img_s"], r["resnet20_train_img_s"]
    device = m["gpu"] or f"{m['cpu']}, {m['threads']} threads"
    return "\n".join(
        [
            f"Command: `{r['command']}`",
            f"Machine: {device} ({r['device']}); Python {m['python']}, torch {m['torch']}, "
            f"numpy {m['numpy']}. Data: {r['data']} ({r['samples']} images), "
            f"batch {r['batch_size']}.",
            "",
            "| measurement | images/s, median | min .. max | windows |",
            "|---|---|---|---|",
            f"| input pipeline (gather + pad-crop-flip + normalise) | {p['median']:,.0f} | "
            f"{p['min']:,.0f} .. {p['max']:,.0f} | {p['windows']} |",
            f"| ResNet-20 training step (fp32, SGD) | {t['median']:,.0f} | "
            f"{t['min']:,.0f} .. {t['max']:,.0f} | {t['windows']} |",
            f"| **ratio pipeline / training** | **{r['ratio']:.1f}x** | | (target >= 20x) |",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
