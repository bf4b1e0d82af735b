"""Several views of each image scored as one: the softmax averaged over the views.

One rule for every place that averages views: the paper's 10-crop testing (§4.1, "we adopt the
standard 10-crop testing"), ``resnetlab eval --tta`` and the ``eval_tta`` of a training run.

The test-time augmentations (``TTA_VIEWS``, the one list that the config, ``resnetlab eval`` and
the evaluations check against): ``flip``, each image and its left-right mirror image; and
``flip-shift``, those two each as they are and moved by ``SHIFT`` pixels down-right and up-left,
the uncovered border zero, as the training augmentation's zero-padded crops move them.
"""

from __future__ import annotations

import math

import torch

# Pixels that `flip-shift` moves an image by: half of the pad-4 crop's largest move (§4.2), so the
# moved views stay well inside what training showed.
SHIFT = 2
TTA_VIEWS = {"flip": 2, "flip-shift": 6}  # name: views per image


def flip_views(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2, C, H, W): each image and its left-right mirror image."""
    return torch.stack([images, images.flip(-1)], dim=1)


def shift_images(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(B, C, H, W) moved ``dy`` pixels down and ``dx`` right (negative: up, left), zero-filled."""
    h, w = images.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))  # zeros
    top, left = pad - dy, pad - dx
    return padded[..., top : top + h, left : left + w]


def tta_views(images: torch.Tensor, tta: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, TTA_VIEWS[tta], C, H, W): the views that ``tta`` averages.

    ``flip``: the image and its mirror image. ``flip-shift``: those two, then both moved by
    ``(SHIFT, SHIFT)``, then both moved by ``(-SHIFT, -SHIFT)``.
    """
    views = flip_views(images)  # (B, 2, C, H, W)
    if tta == "flip-shift":
        moved = [shift_images(views, d, d) for d in (SHIFT, -SHIFT)]
        views = torch.cat([views, *moved], dim=1)  # (B, 6, C, H, W)
    elif tta != "flip":
        raise ValueError(f"unknown test-time augmentation {tta!r}; known: {', '.join(TTA_VIEWS)}")
    return views


def crop_average_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log of the softmax probabilities averaged over views (crops or mirror images).

    Args:
        logits: (B, n_views, K).

    Returns:
        (B, K) log of the mean over views of softmax(logits), computed in log space.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, n, K)
    return torch.logsumexp(log_probs, dim=1) - math.log(logits.shape[1])  # (B, K)


def score_views(model: torch.nn.Module, views: torch.Tensor) -> torch.Tensor:
    """(B, n, C, H, W) views -> (B, K) log of the mean softmax, in one forward pass."""
    b, n = views.shape[:2]
    logits = model(views.flatten(0, 1)).unflatten(0, (b, n))  # (B, n, K)
    return crop_average_log_probs(logits)
