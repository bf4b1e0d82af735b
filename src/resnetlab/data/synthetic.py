"""Random images: a dataset with no files, for smoke runs and for timing the training step.

``resnetlab train --data synthetic`` (pytorch/examples' ``--dummy``) exercises every part of a run
in seconds, and ``resnetlab bench train`` times its default step on it. The pixels and labels are
uniform random draws with a fixed seed: nothing can be learnt, and the loss stays near log(10).
"""

from __future__ import annotations

import torch

from resnetlab.data.array import ArrayDataset
from resnetlab.data.info import DatasetInfo
from resnetlab.errors import ConfigError

CLASSES = tuple(str(k) for k in range(10))
SIZES = {"train": 1024, "test": 256}  # images per split: 8 batches of 128 a training epoch
DEFAULT_SIZE = 32
SEEDS = {"train": 0, "test": 1}
MEAN, STD = (0.5,) * 3, (0.2887,) * 3  # of uniform pixels in [0, 1]: 1/2 and 1/sqrt(12)


def load_synthetic(split: str = "train", image_size: int | None = None) -> ArrayDataset:
    """``SIZES[split]`` random RGB images of side ``image_size`` (default 32) and labels 0..9."""
    size = DEFAULT_SIZE if image_size is None else int(image_size)
    if size < 1:
        raise ConfigError(f"--image-size for synthetic must be at least 1; got {size}")
    gen = torch.Generator().manual_seed(SEEDS[split])
    n = SIZES[split]
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, len(CLASSES), (n,), generator=gen)
    return ArrayDataset(
        images, labels, DatasetInfo("synthetic", CLASSES, (size, size), 3, MEAN, STD)
    )
