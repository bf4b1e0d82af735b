"""The paper's CIFAR augmentation and the normalisation, a whole batch at a time on the device.

§4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded
image or its horizontal flip". The crop offsets and flip bits of every sample of an epoch are
drawn at once from (seed, epoch); a batch gathers its own, so the augmentation of sample i
depends only on (seed, epoch, i), never on the batch size, the order or the rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from resnetlab.data.sampling import AUGMENT_STREAM, generator


@dataclass(frozen=True)
class CropFlip:
    """Per-sample augmentation parameters of one epoch.

    Attributes:
        dy: (N,) int64 top offset of the crop in the padded image, in [0, 2 * pad].
        dx: (N,) int64 left offset of the crop, in [0, 2 * pad].
        flip: (N,) bool, mirror the crop left-right.
    """

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor


def draw_crop_flip(n: int, *, pad: int, seed: int, epoch: int) -> CropFlip:
    """Crop offsets and flip bits for all ``n`` samples of one epoch."""
    gen = generator(seed, epoch, AUGMENT_STREAM)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.randint(0, 2, (n,), generator=gen).bool()
    return CropFlip(dy, dx, flip)


def crop_flip(
    images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int
) -> torch.Tensor:
    """Zero-pad by ``pad``, crop at (dy, dx) back to the input size and mirror where ``flip``.

    The padded batch is viewed (no copy) as every possible crop of every image, one gather picks
    each image's own crop, and a select mirrors the flipped ones.

    Args:
        images: (B, C, H, W) any dtype.
        dy, dx: (B,) int64 offsets in [0, 2 * pad], on the images' device.
        flip: (B,) bool, on the images' device.
        pad: the padding on each side (4 in the paper).

    Returns:
        (B, C, H, W) augmented images, same dtype.
    """
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p), zeros
    sb, sc, sh, sw = padded.stride()
    n = 2 * pad + 1
    windows = padded.as_strided((b, n, n, c, h, w), (sb, sh, sw, sc, sh, sw))  # (B, n, n, C, H, W)
    crops = windows[torch.arange(b, device=images.device), dy, dx]  # (B, C, H, W)
    return torch.where(flip[:, None, None, None], crops.flip(3), crops)


class Normalize:
    """uint8 images to float32 ``(x / 255 - mean) / std`` per channel, on one device."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        std_t = torch.tensor(std, dtype=torch.float32, device=device)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device)
        # x * scale - shift == (x / 255 - mean) / std, with one multiply and one subtract.
        self.scale = (1.0 / (255.0 * std_t)).reshape(1, -1, 1, 1)
        self.shift = (mean_t / std_t).reshape(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 -> (B, C, H, W) float32."""
        return images.to(torch.float32).mul_(self.scale).sub_(self.shift)


def resize(images: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, H, W) float images to height ``side`` (the width in proportion), bilinear with
    antialiasing when shrinking: progressive resizing's smaller early epochs."""
    h, w = images.shape[-2:]
    size = (side, max(1, round(w * side / h)))
    return torch.nn.functional.interpolate(
        images, size=size, mode="bilinear", align_corners=False, antialias=side < h
    )  # (B, C, side, w * side / h)
