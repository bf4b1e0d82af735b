"""The ImageNet recipe (§3.4) on PIL images, for folders decoded in DataLoader workers.

Train: resize so the shorter side is a random length in [256, 480], take a random 224x224 crop,
flip it left-right with probability 1/2. Eval: shorter side 256, center 224x224 crop; optionally
the paper's 10 crops (4 corners and the center, and their mirror images). The sizes are parameters
so the same recipe runs scaled down on small images. The paper's "standard color augmentation"
(PCA lighting noise) is not applied.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class ImageNetRecipe:
    """Sizes of the ImageNet recipe.

    Attributes:
        crop: side of the square crop fed to the network (224).
        resize_min: smallest random shorter side in training (256).
        resize_max: largest random shorter side in training (480).
        eval_resize: shorter side before the center crop at evaluation (256).
    """

    crop: int = 224
    resize_min: int = 256
    resize_max: int = 480
    eval_resize: int = 256

    @classmethod
    def scaled(cls, crop: int) -> ImageNetRecipe:
        """The same proportions for another crop size (32 -> shorter sides 37..69, eval 37)."""
        ratio = crop / 224
        return cls(crop, round(256 * ratio), round(480 * ratio), round(256 * ratio))


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize (bilinear) so that the shorter side is ``size``, keeping the aspect ratio."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return img.resize(new, Image.Resampling.BILINEAR)


def train_view(img: Image.Image, recipe: ImageNetRecipe, rng: random.Random) -> Image.Image:
    """A random-scale, random-crop, random-flip view of ``img`` (crop x crop)."""
    img = resize_shorter(img, rng.randint(recipe.resize_min, recipe.resize_max))
    w, h = img.size
    top, left = rng.randint(0, h - recipe.crop), rng.randint(0, w - recipe.crop)
    img = img.crop((left, top, left + recipe.crop, top + recipe.crop))
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def eval_view(img: Image.Image, recipe: ImageNetRecipe) -> Image.Image:
    """The center crop of ``img`` resized to shorter side ``eval_resize``."""
    img = resize_shorter(img, recipe.eval_resize)
    w, h = img.size
    top, left = (h - recipe.crop) // 2, (w - recipe.crop) // 2
    return img.crop((left, top, left + recipe.crop, top + recipe.crop))


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def ten_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
    """The paper's 10-crop test views of one image.

    Args:
        image: (C, H, W) with H, W >= crop.
        crop: side of each crop.

    Returns:
        (10, C, crop, crop): top-left, top-right, bottom-left, bottom-right, center, then the
        same five mirrored left-right.
    """
    _, h, w = image.shape
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop)]
    corners.append(((h - crop) // 2, (w - crop) // 2))
    crops = torch.stack([image[:, t : t + crop, l : l + crop] for t, l in corners])
    return torch.cat([crops, crops.flip(-1)])  # (10, C, crop, crop)
