"""scikit-learn's bundled 8x8 handwritten digits: the dataset that needs no download.

1,797 grayscale images (values 0..16) are scaled to 0..255, upsampled (bilinear) to the size the
CIFAR networks take, and split once, stratified by class with a fixed seed, into 1,437 train and
360 test images (80/20).
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from resnetlab.data.array import ArrayDataset
from resnetlab.data.info import DatasetInfo
from resnetlab.data.stats import array_stats, cached_stats
from resnetlab.errors import ConfigError

CLASSES = tuple(str(d) for d in range(10))
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: the test set must be the same for every run and every user
DEFAULT_SIZE = 32


def load_digits(split: str = "train", image_size: int | None = None) -> ArrayDataset:
    """The train (1,437) or test (360) digits as a one-channel ``ArrayDataset``.

    Args:
        split: ``"train"`` or ``"test"``.
        image_size: side of the square images, at least 8 (default 32).
    """
    size = DEFAULT_SIZE if image_size is None else int(image_size)
    if size < 8:
        raise ConfigError(f"--image-size for digits must be at least 8; got {size}")
    images, labels = _splits(size)[split]
    mean, std = cached_stats(
        f"digits-{size}:{_sklearn_version()}", lambda: _train_stats(size), "digits"
    )
    info = DatasetInfo("digits", CLASSES, (size, size), 1, mean, std)
    return ArrayDataset(images, labels, info)


def _train_stats(size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return array_stats(_splits(size)["train"][0])


@functools.lru_cache(maxsize=4)
def _splits(size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    raw = sk_load_digits()
    pixels = torch.from_numpy(raw.images).to(torch.float32)[:, None] * (255.0 / 16.0)  # (N,1,8,8)
    if size != 8:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    images = pixels.round().clamp_(0, 255).to(torch.uint8)  # (N, 1, size, size)
    labels = torch.from_numpy(raw.target).to(torch.int64)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=raw.target,
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return {
        "train": (images[train_idx], labels[train_idx]),
        "test": (images[test_idx], labels[test_idx]),
    }


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
