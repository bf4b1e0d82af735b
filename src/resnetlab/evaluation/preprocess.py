"""How an image file becomes a model input: decode, resize, center crop, normalise.

The same steps serve ``resnetlab predict`` and are written beside every exported model, so that a
server needs nothing but the ``.json`` file to feed it. They mirror the evaluation view of the
data the model was trained on:

- folder data (the ImageNet recipe, §3.4): shorter side to ``crop * 256 / 224``, center crop;
- array data (digits, CIFAR, SIGNS): the whole image is the view, so the shorter side goes to the
  crop size and the center crop removes only the excess of a non-square image.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from resnetlab.data.images import decode_image
from resnetlab.data.transforms import ImageNetRecipe, eval_view
from resnetlab.errors import CheckpointError


@dataclass(frozen=True)
class Preprocess:
    """The fixed input pipeline of a trained model.

    Attributes:
        crop: side of the square the network takes (H = W).
        resize: shorter side of the image before the center crop.
        channels: 1 (grayscale, ITU-R 601 luma) or 3 (RGB).
        mean: per channel, in [0, 1] units, subtracted after scaling pixels to [0, 1].
        std: per channel, divided after the mean is subtracted.
    """

    crop: int
    resize: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def for_data(cls, data: Mapping[str, Any]) -> Preprocess:
        """The pipeline for a checkpoint's ``data`` entry (name, image_size, channels, mean, std).

        Raises:
            CheckpointError: a non-square image size or statistics that do not match the
                channels.
        """
        h, w = data["image_size"]
        channels, mean, std = int(data["channels"]), data["mean"], data["std"]
        if h != w:
            raise CheckpointError(f"checkpoint data has non-square images ({h}x{w})")
        if channels not in (1, 3) or len(mean) != channels or len(std) != channels:
            raise CheckpointError(
                f"checkpoint data has {channels} channels but {len(mean)} means, {len(std)} stds"
            )
        resize = ImageNetRecipe.scaled(h).eval_resize if data["name"] == "folder" else h
        return cls(int(h), int(resize), channels, tuple(mean), tuple(std))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """A decoded image as a (C, crop, crop) float32 normalised tensor."""
        recipe = ImageNetRecipe(crop=self.crop, eval_resize=self.resize)
        view = eval_view(image.convert("RGB"), recipe)
        if self.channels == 1:
            view = view.convert("L")
        pixels = np.asarray(view, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3) in [0, 1]
        x = torch.from_numpy(pixels.reshape(self.crop, self.crop, self.channels).copy())
        x = x.permute(2, 0, 1)  # (C, H, W)
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (x - mean) / std

    def load(self, path: str | Path) -> torch.Tensor:
        """Decode an image file (upright, by its EXIF orientation) and preprocess it.

        Returns:
            (C, crop, crop) float32.

        Raises:
            DataError: naming the file, when it is missing, not a regular file (a FIFO or a
                device is refused without being read), not an image, corrupt or too large.
        """
        with warnings.catch_warnings():
            # Pillow warns about images above 89 M pixels; decode_image refuses them anyway
            # (its limit is lower), and one error line says more than a warning and an error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return self(decode_image(path))

    def to_dict(self) -> dict[str, Any]:
        """The steps as plain data, with the order spelled out for a reader in another language."""
        return {
            "steps": [
                "decode the file to RGB (8 bits per channel), turned upright by its EXIF "
                "orientation tag (274) when it has one",
                f"resize (bilinear) so that the shorter side is {self.resize} pixels",
                f"center crop {self.crop}x{self.crop}",
                "convert to grayscale (L = 0.299 R + 0.587 G + 0.114 B)"
                if self.channels == 1
                else "keep RGB channel order",
                "scale pixels to [0, 1] (divide by 255)",
                "subtract mean and divide by std, per channel",
                "lay out as NCHW float32",
            ],
            "resize_shorter_side": self.resize,
            "center_crop": [self.crop, self.crop],
            "channels": self.channels,
            "color": "L" if self.channels == 1 else "RGB",
            "mean": list(self.mean),
            "std": list(self.std),
        }
