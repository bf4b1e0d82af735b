"""What the ``signal`` and ``shattered`` experiments share: nets measured at initialisation.

Nothing trains. Each part is a plain net and its ResNet twin (CIFAR family, §4.2, option A) of one
depth and norm, built from one seed so that they hold the same weights and differ only in their
shortcuts, measured on one batch of real images: a seeded draw of the train split of the recipe's
data (``batches.init_batch``), the same for every net and seed. Parts are kept in
``<out>/parts/`` and computed with one intra-op thread per job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnetlab.data.info import DatasetInfo
from resnetlab.errors import ConfigError
from resnetlab.experiments.batches import DRAW_SEED, init_batch, tensors_digest
from resnetlab.experiments.parts import Part
from resnetlab.experiments.runner import Recipe, RunSpec, config_for

NORMS = ("bn", "none")  # ResNet(norm=...): with BatchNorm, or without any
NORM_WORDS = {"bn": "with BN", "none": "without BN"}
THREADS = 1  # per job: small nets at initialisation run fastest on one thread each


@dataclass(frozen=True)
class InitData:
    """The batch every net is measured on.

    Attributes:
        images: (B, C, H, W) normalised images.
        labels: (B,) their classes.
        info: the dataset's info (classes, channels, image size).
        settings: what identifies the batch in the kept parts (data, size, count, digest).
    """

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    settings: dict[str, Any]


def check_norms(norms: Sequence[str]) -> list[str]:
    """The norms, unique, in the order given.

    Raises:
        ConfigError: none, or one that is not ``bn`` or ``none``.
    """
    if not norms:
        raise ConfigError("--norms needs at least one of bn, none")
    for norm in norms:
        if norm not in NORMS:
            raise ConfigError(f"--norms: {norm!r} is not one of bn, none")
    return list(dict.fromkeys(norms))


def init_data(recipe: Recipe, seed: int) -> InitData:
    """The recipe's batch: ``batch_size`` images of its data's train split."""
    cfg = config_for(recipe, RunSpec("init", seed))
    images, labels, info = init_batch(cfg, cfg.batch_size)
    settings = {
        "data": cfg.data.name,
        "image_size": list(info.image_size),
        "images": len(labels),
        "draw_seed": DRAW_SEED,
        "digest": tensors_digest(images, labels),
    }
    return InitData(images, labels, info, settings)


def init_parts(
    out: Path,
    data: InitData,
    depths: Sequence[int],
    norms: Sequence[str],
    seeds: Sequence[int],
    compute: Callable[..., Any],
    args: tuple = (),
    settings: dict[str, Any] | None = None,
) -> list[Part]:
    """One part per (norm, depth, seed): ``compute(*args, depth, norm, classes, seed)``."""
    classes = data.info.num_classes
    return [
        Part(
            name=f"{norm}-depth{depth}-seed{seed}",
            path=out / "parts" / f"{norm}-depth{depth}-seed{seed}.json",
            settings={
                **data.settings,
                **(settings or {}),
                "depth": depth,
                "norm": norm,
                "seed": seed,
            },
            compute=compute,
            args=(*args, depth, norm, classes, seed),
            cost=depth,
        )
        for norm in norms
        for depth in depths
        for seed in seeds
    ]


def describe_batch(data: InitData) -> str:
    """``"64 images of digits (8x8), drawn with seed 0 from the train split"``."""
    h, w = data.info.image_size
    return (
        f"{len(data.labels)} images of {data.settings['data']} ({h}x{w}), drawn with seed "
        f"{DRAW_SEED} from the train split and normalised with its mean and std"
    )
