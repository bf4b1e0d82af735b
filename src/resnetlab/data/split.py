"""Seeded splits: the paper's train/validation split (45k/5k on CIFAR-10, §4.2) of an array
dataset, and the test split held out of an image folder that has none.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from resnetlab.data.array import ArrayDataset
from resnetlab.errors import ConfigError

# Share of each class that a folder without test/ or val/ holds out as its test split (the 0.2
# that Keras's validation_split is usually given).
TEST_FRACTION = 0.2


def train_val_split(
    ds: ArrayDataset, val_fraction: float, seed: int
) -> tuple[ArrayDataset, ArrayDataset]:
    """Split ``ds`` at random into disjoint train and validation parts.

    The validation part has ``round(len(ds) * val_fraction)`` samples drawn by a generator seeded
    with ``seed``; both parts keep the original order of their samples, so the split depends only
    on (len(ds), val_fraction, seed).

    Args:
        ds: the training set.
        val_fraction: in [0, 1); 0.1 turns CIFAR-10's 50k into the paper's 45k/5k.
        seed: the split's seed.

    Returns:
        (train, val) datasets sharing ``ds.info``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1); got {val_fraction}")
    n = len(ds)
    n_val = round(n * val_fraction)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    val_idx = perm[:n_val].sort().values
    train_idx = perm[n_val:].sort().values
    return ds.subset(train_idx), ds.subset(val_idx)


def holdout_split(
    samples: list[tuple[str, int]], root: str | Path, fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Hold out part of each class of an image folder as its test split (stratified, seeded).

    Of each class with n images, ``round(n * fraction)`` (at most n - 1, so that every class
    keeps a training image) are held out: those whose keyed hash of (seed, path relative to
    ``root``) is smallest. The split therefore depends only on the seed and the file names: not
    on the order in which the file system lists them, nor on where the folder lives; an image
    added to a class moves at most one other image of that class across.

    Args:
        samples: (path, label) pairs under ``root``.
        root: the folder the paths are taken relative to.
        fraction: in [0, 1).
        seed: the split's seed.

    Returns:
        (train, test) samples, each in the order of ``samples``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1); got {fraction}")
    by_class: dict[int, list[str]] = {}
    for path, label in samples:
        by_class.setdefault(label, []).append(path)
    held: set[str] = set()
    for paths in by_class.values():
        n_test = min(round(len(paths) * fraction), len(paths) - 1)
        held.update(sorted(paths, key=lambda p: _rank(seed, Path(p).relative_to(root)))[:n_test])
    return [s for s in samples if s[0] not in held], [s for s in samples if s[0] in held]


def _rank(seed: int, relative: Path) -> bytes:
    return hashlib.sha256(f"{seed}\0{relative.as_posix()}".encode()).digest()
