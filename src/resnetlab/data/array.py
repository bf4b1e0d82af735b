"""Small datasets held as one uint8 tensor (digits, CIFAR, SIGNS)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from resnetlab.data.info import DatasetInfo
from resnetlab.errors import DataError


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == is not a bool
class ArrayDataset:
    """Images and labels of a whole split in memory.

    Attributes:
        images: (N, C, H, W) uint8.
        labels: (N,) int64, each in ``range(info.num_classes)``.
        info: the dataset's classes, size and statistics.
    """

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo

    def __post_init__(self) -> None:
        check_arrays(self.images, self.labels, len(self.info.classes), self.info.name)

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: torch.Tensor) -> ArrayDataset:
        """The samples at ``indices`` (a 1-D integer tensor), in that order."""
        return ArrayDataset(self.images[indices], self.labels[indices], self.info)


def check_arrays(images: torch.Tensor, labels: torch.Tensor, num_classes: int, source: str) -> None:
    """Raise ``DataError`` naming ``source`` unless images and labels are well formed.

    Args:
        images: must be (N, C, H, W) uint8.
        labels: must be (N,) int64 with values in ``[0, num_classes)``.
        num_classes: the number of classes.
        source: the file or dataset name to blame in the message.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(
            f"{source}: images must be (N, C, H, W) uint8; got {tuple(images.shape)} {images.dtype}"
        )
    if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise DataError(
            f"{source}: labels must be ({images.shape[0]},) int64; "
            f"got {tuple(labels.shape)} {labels.dtype}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise DataError(f"{source}: label {bad} is out of range 0..{num_classes - 1}")
