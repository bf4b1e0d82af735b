"""Trained models for the fine-tuning, features and explanation tests.

``digits_folder`` writes scikit-learn's digits as PNG files in class folders (RGB, 16x16), the
layout of a user's own images; ``pretrained_on_digits`` trains a CIFAR ResNet-8 on the folder of
all ten digits once per test process and returns its run folder. ``trained_digits`` does the same
on the in-memory digits (one channel).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 16
PRETRAIN_ITERATIONS = 240  # batch 32: 5.3 epochs of the 1,437 training digits


def tiny_sets(extra: list[str] = ()) -> list[str]:
    """The settings of every run here: a CIFAR ResNet-8 (n = 1), deterministic, on the CPU."""
    return [
        "model.name=cifar_resnet",
        "model.overrides={depth: 8}",
        f"data.image_size={SIDE}",
        "data.workers=0",
        "device=cpu",
        "deterministic=true",
        *extra,
    ]


@functools.cache
def digits_folder(base: Path, classes: tuple[int, ...]) -> Path:
    """``base/digits-<classes>/{train,test}/<digit>/<i>.png``: the digits of those classes."""
    from resnetlab.data import load_dataset

    root = base / f"digits-{''.join(map(str, classes))}"
    for split in ("train", "test"):
        ds = load_dataset("digits", split, image_size=SIDE)
        for i, (image, label) in enumerate(zip(ds.images, ds.labels.tolist(), strict=True)):
            if label not in classes:
                continue
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            gray = image[0].numpy().astype(np.uint8)  # (H, W)
            Image.fromarray(np.stack([gray] * 3, axis=-1)).save(folder / f"{i:04d}.png")
    return root


@functools.cache
def pretrained_on_digits(base: Path) -> Path:
    """A run folder of a ResNet-8 trained on the folder of all ten digits (RGB PNG files)."""
    from resnetlab.train import fit, load_config

    root = digits_folder(base, tuple(range(10)))
    out = base / "pretrained-digits"
    sets = ["data.name=folder", f"data.root={root}", "data.augment=false", "batch_size=32"]
    sets += ["optim.lr=0.05", "schedule.kind=cosine", "eval_train_at_end=false"]
    cfg = load_config(sets=tiny_sets(sets), flags={"iterations": PRETRAIN_ITERATIONS})
    fit(cfg, out)
    return out


@functools.cache
def trained_digits(base: Path) -> Path:
    """A run folder of a ResNet-8 trained on the in-memory digits (one channel, 16x16)."""
    from resnetlab.train import fit, load_config

    out = base / "trained-digits"
    sets = ["data.name=digits", "data.augment=false", "batch_size=32", "optim.lr=0.05"]
    sets += ["schedule.kind=cosine", "eval_train_at_end=false"]
    cfg = load_config(sets=tiny_sets(sets), flags={"iterations": PRETRAIN_ITERATIONS})
    fit(cfg, out)
    return out
