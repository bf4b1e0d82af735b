"""Several views of each image scored as one: the softmax averaged over the views.

One rule for every place that averages views: the paper's 10-crop testing (§4.1, "we adopt the
standard 10-crop testing"), ``resnetlab eval --tta flip`` and the ``eval_tta`` of a training run.
"""

from __future__ import annotations

import math

import torch


def flip_views(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2, C, H, W): each image and its left-right mirror image."""
    return torch.stack([images, images.flip(-1)], dim=1)


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
