"""What a dataset is: class names, image size, channels and per-channel statistics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a dataset that models and loaders need.

    Attributes:
        name: the registry name (``"digits"``, ``"cifar10"``, ...).
        classes: class names; the index of a name is its label.
        image_size: (H, W) of the images the loaders yield.
        channels: 1 for digits, 3 otherwise.
        mean: per-channel mean in [0, 1] units, computed on the train split.
        std: per-channel standard deviation in [0, 1] units, computed on the train split.
    """

    name: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)
