"""What a dataset is: class names, image size, channels and per-channel statistics."""

from __future__ import annotations

from dataclasses import dataclass

from resnetlab.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a dataset that models and loaders need.

    Attributes:
        name: the registry name (``"digits"``, ``"cifar10"``, ...).
        classes: class names; the index of a name is its label.
        image_size: (H, W) of the images the loaders yield.
        channels: 1 for digits, 3 otherwise.
        mean: per-channel mean in [0, 1] units, computed on the train split; ``None`` when
            the train split is absent (a test split loaded on its own).
        std: per-channel standard deviation in [0, 1] units, as ``mean``.
    """

    name: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) to normalise with.

        Raises:
            DataError: the statistics are unknown because the train split is absent.
        """
        if self.mean is None or self.std is None:
            raise DataError(
                f"{self.name}: the train split is absent, so there is no channel mean and std "
                "to normalise with (evaluate a checkpoint, which carries its own)"
            )
        return self.mean, self.std
