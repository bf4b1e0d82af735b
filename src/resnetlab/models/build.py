"""Building a registered model for a dataset: its classes, its channels, its image size."""

from __future__ import annotations

from typing import Any

from torch import nn

from resnetlab.errors import ConfigError
from resnetlab.models.registry import create_model, get_spec


def build_model(
    name: str, num_classes: int, in_channels: int, overrides: dict[str, Any]
) -> nn.Module:
    """``create_model`` for data with ``in_channels`` channels; a clear error where it cannot be.

    Raises:
        ConfigError: the model cannot take such images (e.g. the SIGNS net wants 3 channels),
            or the overrides try to set ``num_classes`` (the data decides it).
    """
    if "num_classes" in overrides:
        raise ConfigError("model.overrides cannot set num_classes: the dataset decides it")
    kwargs = dict(overrides)
    if in_channels != 3:  # every builder defaults to RGB; the SIGNS net takes nothing else
        kwargs["in_channels"] = in_channels
    try:
        return create_model(name, num_classes=num_classes, **kwargs)
    except ConfigError as err:
        if "in_channels" in kwargs and "in_channels" in str(err):
            raise ConfigError(
                f"model {name!r} takes 3-channel images only; the data has {in_channels}"
            ) from None
        raise


def check_input_size(name: str, image_size: tuple[int, int]) -> None:
    """Raise ``ConfigError`` for a model with a fixed input size and data of another size."""
    spec = get_spec(name)
    if spec.fixed_input_size and tuple(image_size) != spec.input_size:
        h, w = spec.input_size
        raise ConfigError(
            f"model {name!r} takes {h}x{w} images only; the data is {image_size[0]}x{image_size[1]}"
        )
