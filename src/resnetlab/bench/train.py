"""Steady-state training throughput: images/s, memory, and the FLOP rate it implies.

The step is the one ``resnetlab train`` runs: batches from the same loader (``make_loader``:
device-resident, augmented on the device), the model built, placed and precision-handled by the
same helpers (``resnetlab.train``), SGD with the configs' default hyper-parameters. Only the
logging, evaluation and checkpoints around the step are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.analysis import summarize
from resnetlab.bench.timing import (
    Stats,
    describe_machine,
    machine_info,
    matmul_flops,
    peak_gpu_mib,
    peak_rss_mib,
    time_windows,
)
from resnetlab.data import ArrayDataset, DatasetInfo, load_dataset, make_loader
from resnetlab.errors import ConfigError
from resnetlab.models import get_spec
from resnetlab.train.checkpoint import build_model
from resnetlab.train.config import OptimConfig
from resnetlab.train.precision import autocast, make_scaler, resolve_device, resolve_precision

SYNTHETIC_BATCHES = 16  # batches of random images held on the device; the loader cycles them
PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    precision: str,
    device: torch.device,
) -> tuple[float, int, int]:
    """The step of ``resnetlab.train.loop.train_one_epoch``, without its logging and checks.

    Returns:
        The batch's loss sum, errors and size, read back every step as the loop reads them
        (device syncs on a GPU, so they are part of what is timed).
    """
    with autocast(precision, device):
        logits = model(images)  # (B, num_classes)
    loss = F.cross_entropy(logits.float(), labels)
    wrong, n = (logits.argmax(1) != labels).sum().item(), len(labels)
    stats = (loss.item() * n, wrong, n)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return stats


def synthetic_dataset(
    model_name: str, n: int, seed: int = 0, image_size: int | None = None
) -> ArrayDataset:
    """``n`` random uint8 images (the model's input size, or ``image_size`` square) and labels."""
    spec = get_spec(model_name)
    h, w = (image_size, image_size) if image_size else spec.input_size
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, spec.num_classes, (n,), generator=gen)
    classes = tuple(str(k) for k in range(spec.num_classes))
    info = DatasetInfo("synthetic", classes, (h, w), 3, (0.5,) * 3, (0.25,) * 3)
    return ArrayDataset(images, labels, info)


def endless(loader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches, epoch after epoch."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


@dataclass
class TrainSetup:
    """A ready training step and what it trains.

    Attributes:
        step: runs one training step on the next batch (the batch's making included).
        model: the model as built (not compiled), for counting multiply-adds.
        info: the data's description (image size, channels, classes).
        precision: the resolved precision (``auto`` made concrete).
        device: the device it runs on.
        settings: the other arguments of ``make_train_step``, for the report.
    """

    step: Callable[[], None]
    model: nn.Module
    info: DatasetInfo
    precision: str
    device: torch.device
    settings: dict


def make_train_step(
    model_name: str,
    *,
    data: str = "synthetic",
    data_dir: str | None = None,
    batch_size: int = 128,
    precision: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    device: str = "cpu",
    image_size: int | None = None,
    seed: int = 0,
) -> TrainSetup:
    """Build what ``resnetlab train`` builds for one run and return its step.

    Args:
        model_name: a registry name.
        data: ``"synthetic"`` or an in-memory dataset name of ``resnetlab.data``.
        data_dir: the dataset's folder (default: where ``load_dataset`` looks).
        batch_size: images per step.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (bf16 where native).
        channels_last: NHWC model and batches.
        compile: ``torch.compile`` the model.
        device: ``cpu`` or ``cuda``.
        image_size: side of synthetic images (default: the model's input size).
        seed: seeds the weights, the data and its order.
    """
    dev = resolve_device(device)
    torch.manual_seed(seed)
    if data == "synthetic":
        ds = synthetic_dataset(model_name, batch_size * SYNTHETIC_BATCHES, seed, image_size)
    else:
        ds = load_dataset(data, "train", root=data_dir)
    if not isinstance(ds, ArrayDataset):
        raise ConfigError(f"--data {data}: bench train needs an in-memory dataset, not a folder")
    loader = make_loader(
        ds, batch_size, train=True, device=dev, seed=seed, channels_last=channels_last
    )
    if len(loader) == 0:
        raise ConfigError(f"--batch-size {batch_size} exceeds the {len(ds)} images of {data}")
    model = build_model(model_name, ds.info.num_classes, ds.info.channels, {}).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    trained = torch.compile(model) if compile else model
    precision = resolve_precision(precision, dev)
    o = OptimConfig()  # the configs' defaults: the paper's SGD
    optimizer = torch.optim.SGD(
        model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
    )
    scaler = make_scaler(precision, dev)
    batches = endless(loader)
    model.train()

    def step() -> None:
        images, labels = next(batches)
        train_step(trained, optimizer, scaler, images, labels, precision=precision, device=dev)

    settings = {
        "data": data,
        "batch_size": batch_size,
        "channels_last": channels_last,
        "compile": compile,
    }
    return TrainSetup(step, model, ds.info, precision, dev, settings)


def bench_train(
    model_name: str,
    *,
    steps: int = 20,
    windows: int = 5,
    warmup: int = 5,
    peak_size: int | None = None,
    **setup: object,
) -> dict:
    """Time ``windows`` windows of ``steps`` training steps after ``warmup`` steps.

    Args:
        model_name: a registry name.
        steps: steps per timed window.
        windows: timed windows; the median over them is reported.
        warmup: untimed steps first (compilation, allocator, oneDNN caches).
        peak_size: side of the matmul that measures the peak (default: ``matmul_flops``'s).
        **setup: ``make_train_step``'s keyword arguments (data, batch_size, precision, ...).

    Returns:
        ``img_per_s`` (median over windows), ``img_per_s_stats``, ``step_ms``, the settings,
        ``train_flop_per_image`` (3 x 2 x forward multiply-adds: forward, and backward to both
        inputs and weights), ``achieved_flop_per_s``, ``peak_flop_per_s`` (a matmul in the
        step's precision, measured in the same run), ``peak_fraction``, ``peak_rss_mib``,
        ``peak_gpu_mib`` and ``machine``.
    """
    s = make_train_step(model_name, **setup)
    batch_size = s.settings["batch_size"]
    seconds = time_windows(s.step, warmup=warmup, windows=windows, iters=steps, device=s.device)
    rates = Stats.of([batch_size / t for t in seconds])
    flop_per_image = 6 * summarize(s.model, s.info.image_size, s.info.channels).macs
    peak = matmul_flops(PEAK_DTYPES[s.precision], s.device, peak_size)
    achieved = flop_per_image * rates.median
    return {
        "model": model_name,
        **s.settings,
        "image_size": list(s.info.image_size),
        "precision": s.precision,
        "device": str(s.device),
        "steps_per_window": steps,
        "windows": windows,
        "warmup": warmup,
        "img_per_s": rates.median,
        "img_per_s_stats": rates.to_dict(),
        "step_ms": Stats.of([t * 1e3 for t in seconds]).median,
        "train_flop_per_image": flop_per_image,
        "achieved_flop_per_s": achieved,
        "peak_flop_per_s": peak,
        "peak_fraction": achieved / peak,
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": peak_gpu_mib(s.device),
        "machine": machine_info(s.device),
    }


def format_train(r: dict) -> str:
    """The result as a few lines of text."""
    s = r["img_per_s_stats"]
    h, w = r["image_size"]
    gpu = f", GPU peak {r['peak_gpu_mib']:.0f} MiB" if r["peak_gpu_mib"] is not None else ""
    return "\n".join(
        [
            f"{r['model']} on {r['data']} {h}x{w}, batch {r['batch_size']}, {r['precision']}, "
            f"channels_last={r['channels_last']}, compile={r['compile']}, {r['device']}",
            f"  {r['img_per_s']:.1f} images/s median of {r['windows']} windows x "
            f"{r['steps_per_window']} steps (min {s['min']:.1f}, max {s['max']:.1f}); "
            f"{r['step_ms']:.1f} ms/step",
            f"  {r['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s achieved = "
            f"{100 * r['peak_fraction']:.1f}% of the measured {r['precision']} matmul peak "
            f"{r['peak_flop_per_s'] / 1e9:.1f} GFLOP/s",
            f"  peak RSS {r['peak_rss_mib']:.0f} MiB{gpu}",
            f"  {describe_machine(r['machine'])}",
        ]
    )
