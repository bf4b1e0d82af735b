"""The paper's train/validation split (45k/5k on CIFAR-10, §4.2) by a fraction and a seed."""

from __future__ import annotations

import torch

from resnetlab.data.array import ArrayDataset
from resnetlab.errors import ConfigError


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
