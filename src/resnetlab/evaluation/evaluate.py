"""Running a trained classifier over a loader and collecting ``EvalResult``."""

from __future__ import annotations

import torch
from torch import nn

from resnetlab.data import Loader
from resnetlab.errors import ConfigError
from resnetlab.evaluation.metrics import EvalResult, MetricAccumulator
from resnetlab.nn.views import TTA_VIEWS, score_views, tta_views

TTA = tuple(TTA_VIEWS)  # test-time augmentations evaluate_classifier knows


def evaluate_classifier(model: nn.Module, loader: Loader, tta: str | None = None) -> EvalResult:
    """Top-1/top-5 error, loss, per-class accuracy and confusion matrix of ``model`` on ``loader``.

    Batches of several views per image, (B, n_crops, C, H, W) as the 10-crop folder loader
    yields them, are scored by the softmax probabilities averaged over the views (§3.4).

    Args:
        model: the network, on the loader's device; evaluated in eval mode, its mode restored.
        loader: any loader of the ``resnetlab.data`` protocol (one pass of epoch 0 is read).
        tta: ``"flip"`` scores each image by the softmax averaged over it and its mirror image
            (left-right), as the 10-crop averages its views; ``"flip-shift"`` averages those two
            and both moved 2 pixels down-right and up-left (``nn.views.tta_views``); ``None``
            scores the image alone.

    Returns:
        The metrics over every sample the loader yields.

    Raises:
        ConfigError: an unknown ``tta``, or a ``tta`` on views that are mirrored already.
    """
    if tta is not None and tta not in TTA:
        raise ConfigError(f"--tta must be one of {', '.join(TTA)}; got {tta!r}")
    acc = MetricAccumulator(loader.info.classes)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for images, labels in loader.epoch(0):
                if tta is not None:
                    if images.dim() == 5:
                        raise ConfigError(f"--tta {tta}: the 10 crops hold their mirror images")
                    images = tta_views(images, tta)  # (B, views, C, H, W)
                if images.dim() == 5:
                    log_probs = score_views(model, images)  # (B, K)
                else:
                    log_probs = torch.log_softmax(model(images).float(), dim=1)  # (B, K)
                acc.update(log_probs, labels)
    finally:
        model.train(was_training)
    return acc.result()
