"""Running a trained classifier over a loader and collecting ``EvalResult``."""

from __future__ import annotations

import torch
from torch import nn

from resnetlab.data import Loader
from resnetlab.evaluation.metrics import EvalResult, MetricAccumulator, crop_average_log_probs


def evaluate_classifier(model: nn.Module, loader: Loader) -> EvalResult:
    """Top-1/top-5 error, loss, per-class accuracy and confusion matrix of ``model`` on ``loader``.

    Batches of several views per image, (B, n_crops, C, H, W) as the 10-crop folder loader
    yields them, are scored by the softmax probabilities averaged over the views (§3.4).

    Args:
        model: the network, on the loader's device; evaluated in eval mode, its mode restored.
        loader: any loader of the ``resnetlab.data`` protocol (one pass of epoch 0 is read).

    Returns:
        The metrics over every sample the loader yields.
    """
    acc = MetricAccumulator(loader.info.classes)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for images, labels in loader.epoch(0):
                if images.dim() == 5:
                    b, n = images.shape[:2]
                    logits = model(images.flatten(0, 1)).unflatten(0, (b, n))  # (B, n, K)
                    log_probs = crop_average_log_probs(logits)  # (B, K)
                else:
                    log_probs = torch.log_softmax(model(images).float(), dim=1)  # (B, K)
                acc.update(log_probs, labels)
    finally:
        model.train(was_training)
    return acc.result()
