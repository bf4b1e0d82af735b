"""The deeplearning.ai SIGNS hand signs: ``train_signs.h5`` (1,080) and ``test_signs.h5`` (120).

Each file holds ``<split>_set_x`` (N, 64, 64, 3) uint8, ``<split>_set_y`` (N,) integer labels and
``list_classes`` (the digits 0..5 shown by a hand).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from resnetlab.data.array import ArrayDataset
from resnetlab.data.files import fingerprint, open_regular
from resnetlab.data.info import DatasetInfo
from resnetlab.data.stats import array_stats, cached_stats
from resnetlab.errors import DataError, MissingSplitError

# The official files hold 13 MB; a small damaged or crafted file may declare terabytes of
# (unwritten, fill-value) data, which reading would allocate. Refuse arrays above this.
MAX_BYTES = 1 << 30


def load_signs(split: str, root: Path) -> ArrayDataset:
    """One split of SIGNS from ``root/{split}_signs.h5``.

    The channel statistics come from the train file; the test split loads without it (its
    info then has no mean/std: evaluating a checkpoint uses the checkpoint's own).

    Args:
        split: ``"train"`` or ``"test"``.
        root: the folder holding the files.

    Raises:
        MissingSplitError: the split's file is absent.
    """
    images, labels, classes = read_signs(root / f"{split}_signs.h5", split)
    train = root / "train_signs.h5"
    if split == "test" and not os.path.lexists(train):
        mean = std = None
    else:
        mean, std = cached_stats(
            f"signs:{fingerprint([train])}",
            lambda: array_stats(read_signs(train, "train")[0]),
            str(train),
        )
    info = DatasetInfo("signs", classes, tuple(images.shape[2:]), 3, mean, std)
    return ArrayDataset(images, labels, info)


def read_signs(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """(images (N, 3, H, W) uint8, labels (N,) int64, class names) from one SIGNS file."""
    import h5py

    if not os.path.lexists(path):
        raise MissingSplitError(f"{path}: file not found")
    try:
        with open_regular(path) as fileobj, h5py.File(fileobj, "r") as f:
            x = _dataset(f, path, f"{split}_set_x")
            y = _dataset(f, path, f"{split}_set_y")
            names = _dataset(f, path, "list_classes")
    except DataError:
        raise
    except Exception as err:  # h5py raises OSError, RuntimeError, KeyError... on damaged files
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from err
    if x.ndim != 4 or x.shape[3] != 3 or x.dtype != np.uint8:
        raise DataError(
            f"{path}: '{split}_set_x' must be (N, H, W, 3) uint8; got {x.shape} {x.dtype}"
        )
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise DataError(
            f"{path}: '{split}_set_y' must be ({x.shape[0]},) integers; got {y.shape} {y.dtype}"
        )
    if names.ndim != 1 or not len(names):
        raise DataError(f"{path}: 'list_classes' must be a list of classes; got {names.shape}")
    labels = torch.from_numpy(y.astype(np.int64))
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(names)):
        bad = labels[(labels < 0) | (labels >= len(names))][0].item()
        raise DataError(f"{path}: '{split}_set_y' label {bad} is out of range 0..{len(names) - 1}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (N, 3, H, W)
    return images, labels, tuple(_name(v) for v in names)


def _dataset(f, path: Path, key: str) -> np.ndarray:
    import h5py

    if key not in f:
        raise DataError(f"{path}: missing key '{key}'")
    if not isinstance(f[key], h5py.Dataset):
        raise DataError(f"{path}: '{key}' is not an array")
    size = f[key].size * f[key].dtype.itemsize
    if size > MAX_BYTES:
        raise DataError(f"{path}: '{key}' declares {size} bytes, over the limit of {MAX_BYTES}")
    return f[key][()]


def _name(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
