"""Steady-state training throughput: images/s, memory, and the FLOP rate it implies.

The step timed is ``resnetlab.train.loop.train_step``, the one ``resnetlab train`` takes, on a run
built by ``build_run`` from a config resolved as ``train`` resolves it (preset < ``--config`` <
``--set`` < flags): the same loader, model, optimizer, schedule, precision and running
statistics. Only what happens between steps (records, evaluation, checkpoints) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from resnetlab.analysis import summarize
from resnetlab.bench.timing import (
    Stats,
    describe_machine,
    machine_info,
    matmul_flops,
    minor_faults,
    peak_gpu_mib,
    peak_rss_mib,
    time_windows,
)
from resnetlab.data import DatasetInfo
from resnetlab.errors import ConfigError
from resnetlab.models import get_spec
from resnetlab.train.config import FLAGS, RunConfig, load_config
from resnetlab.train.distributed import World, unwrap
from resnetlab.train.loop import train_step
from resnetlab.train.run import build_run

PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# What bench train measures when neither --preset nor --config says otherwise: the paper's SGD
# (the configs' defaults) at batch 128, bf16 where the device computes it natively, channels-last.
BENCH_DEFAULTS = {"batch_size": 128, "precision": "auto", "channels_last": True}
OPTION_DEFAULTS = {"data": "synthetic", "device": "cpu"}  # whatever the preset says


def bench_config(
    model_name: str = "resnet20",
    *,
    preset: str | None = None,
    config: str | None = None,
    sets: Sequence[str] = (),
    **options: Any,
) -> RunConfig:
    """The config of the run whose step is timed, resolved as ``resnetlab train`` resolves it.

    Args:
        model_name: a registry name.
        preset: a training preset; without one (and without ``config``) ``BENCH_DEFAULTS``
            fill in what ``options`` leave open.
        config: a YAML config file.
        sets: ``"key=value"`` strings, as ``--set`` takes them.
        **options: values of the command-line options named in ``train.config.FLAGS``
            (``data="digits"``, ``batch_size=64``, ``channels_last=False``, ...); None = not
            given. ``data`` and ``device`` default to ``OPTION_DEFAULTS``; synthetic images take
            the model's own input size unless ``image_size`` is given.
    """
    unknown = sorted(set(options) - set(FLAGS))
    if unknown:
        raise TypeError(f"bench_config() got unexpected options {unknown}")
    options = {**options, "model": model_name}
    for key, default in OPTION_DEFAULTS.items():
        options[key] = default if options.get(key) is None else options[key]
    if options["data"] == "synthetic" and options.get("image_size") is None:
        options["image_size"] = get_spec(model_name).input_size[0]
    given = {FLAGS[k]: v for k, v in options.items() if v is not None}
    defaults = BENCH_DEFAULTS if preset is None and config is None else None
    return load_config(config, preset, sets, given, defaults=defaults)


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
        settings: what the report names: data, batch size, channels-last, compile.
        cfg: the whole resolved config.
    """

    step: Callable[[], None]
    model: nn.Module
    info: DatasetInfo
    precision: str
    device: torch.device
    settings: dict
    cfg: RunConfig


def make_train_step(model_name: str = "resnet20", **options: Any) -> TrainSetup:
    """Build the run ``resnetlab train`` would build (writing nothing) and return its step.

    Args:
        model_name: a registry name.
        **options: ``bench_config``'s keyword arguments (preset, config, sets, data,
            batch_size, precision, ...).

    Raises:
        ConfigError: a bad option, or a dataset that is not held in memory (a folder).
    """
    cfg = bench_config(model_name, **options)
    if cfg.data.name == "folder":
        raise ConfigError("--data folder: bench train needs an in-memory dataset, not a folder")
    run = build_run(cfg, None, World())
    batches = endless(run.train_loader)
    run.model.train()

    def step() -> None:
        images, labels = next(batches)
        train_step(run, images, labels)

    settings = {
        "data": cfg.data.name,
        "batch_size": cfg.batch_size,
        "channels_last": cfg.channels_last,
        "compile": cfg.compile,
        "host_memory": cfg.host_memory,
    }
    return TrainSetup(step, unwrap(run.model), run.info, run.precision, run.device, settings, cfg)


def bench_train(
    model_name: str = "resnet20",
    *,
    steps: int = 20,
    windows: int = 5,
    warmup: int = 5,
    peak_size: int | None = None,
    **options: Any,
) -> dict:
    """Time ``windows`` windows of ``steps`` training steps after ``warmup`` steps.

    Args:
        model_name: a registry name.
        steps: steps per timed window.
        windows: timed windows; the median over them is reported.
        warmup: untimed steps first (compilation, allocator, oneDNN caches).
        peak_size: side of the matmul that measures the peak (default: ``matmul_flops``'s).
        **options: ``bench_config``'s keyword arguments (preset, config, sets, data,
            batch_size, precision, ...).

    Returns:
        ``img_per_s`` (median over windows), ``img_per_s_stats``, ``step_ms``, the settings,
        ``train_flop_per_image`` (3 x 2 x forward multiply-adds: forward, and backward to both
        inputs and weights), ``achieved_flop_per_s``, ``peak_flop_per_s`` (a matmul in the
        step's precision, measured in the same run), ``peak_fraction``, ``peak_rss_mib``,
        ``minor_faults_per_step`` (over the timed windows), ``peak_gpu_mib`` and ``machine``.
    """
    s = make_train_step(model_name, **options)
    batch_size = s.settings["batch_size"]
    time_windows(s.step, warmup=warmup, windows=0, iters=steps, device=s.device)
    faults = minor_faults()
    seconds = time_windows(s.step, warmup=0, windows=windows, iters=steps, device=s.device)
    faults_per_step = (minor_faults() - faults) / (windows * steps)
    rates = Stats.of([batch_size / t for t in seconds])
    flop_per_image = 6 * summarize(s.model, s.info.image_size, s.info.channels).macs
    peak = matmul_flops(PEAK_DTYPES[s.precision], s.device, peak_size)
    achieved = flop_per_image * rates.median
    return {
        "model": model_name,
        **s.settings,
        "preset": s.cfg.preset,
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
        "minor_faults_per_step": faults_per_step,
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
            f"  peak RSS {r['peak_rss_mib']:.0f} MiB{gpu}; "
            f"{r['minor_faults_per_step']:.0f} minor page faults per step "
            f"(host_memory={r['host_memory']})",
            f"  {describe_machine(r['machine'])}",
        ]
    )
