"""Mixup (Zhang et al. 2017, arXiv:1710.09412) and CutMix (Yun et al. 2019, arXiv:1905.04899) of
one training batch, on the device.

Each batch draws its blend from (seed, epoch, batch, rank) alone, so a resumed run mixes every
batch as the straight run did. The targets are rows of class probabilities that sum to one: the
one-hot labels of the batch and of its permutation, weighted by the blend (CutMix: by the share of
the image each one covers).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MIX_STREAM = 2  # apart from the data order's and the crop-flip's streams


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    mixup_alpha: float,
    cutmix_alpha: float,
    seed: int,
    epoch: int,
    batch: int,
    rank: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend a batch with a permutation of itself.

    Args:
        images: (B, C, H, W) normalised images.
        labels: (B,) class indices.
        num_classes: the width of the targets.
        mixup_alpha, cutmix_alpha: Beta(alpha, alpha) parameters; 0 turns one off. With both on,
            each batch takes one of the two with probability 1/2.
        seed, epoch, batch, rank: where the batch is in the run; they fix its draw.

    Returns:
        (mixed images (B, C, H, W) in the input's memory format, targets (B, num_classes)
        float32 whose rows sum to one).
    """
    rng = np.random.default_rng([seed, epoch, batch, rank, MIX_STREAM])
    cutmix = cutmix_alpha > 0 and (mixup_alpha == 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if cutmix else mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(labels))).to(images.device)  # (B,)
    channels_last = images.is_contiguous(memory_format=torch.channels_last)
    if cutmix:
        images, lam = _paste_box(images, perm, lam, rng)
    else:
        images = images.lerp(images[perm], 1.0 - lam)  # lam * x + (1 - lam) * x[perm]
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    onehot = F.one_hot(labels, num_classes).float()  # (B, K)
    return images, onehot.lerp(onehot[perm], 1.0 - lam)


def _paste_box(
    images: torch.Tensor, perm: torch.Tensor, lam: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """Paste a box of area about (1 - lam) from ``images[perm]``; the exact kept share."""
    h, w = images.shape[-2:]
    side = math.sqrt(1.0 - lam)  # Yun et al. 2019, §3.1: r_w = W sqrt(1 - lam)
    bh, bw = int(h * side), int(w * side)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    out = images.clone()
    out[:, :, y0:y1, x0:x1] = images[perm, :, y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
