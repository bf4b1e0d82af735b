"""Classification metrics accumulated batch by batch: top-k error, loss, per-class accuracy, and
the confusion matrix.

The accumulator keeps only counts (a K x K matrix and a few sums), so a test set of any size is
measured in constant memory and never holds all of its scores at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from resnetlab.errors import ConfigError


@dataclass(frozen=True)
class EvalResult:
    """What ``resnetlab eval`` reports.

    Attributes:
        classes: class names; index = label.
        samples: images evaluated.
        loss: mean cross-entropy (nats) of the averaged class probabilities.
        top1_error: fraction of images whose most probable class is wrong.
        top5_error: fraction whose true class is not among the 5 most probable; ``None`` when
            there are fewer than 5 classes (it would be 0 and say nothing).
        per_class_accuracy: per true class, the fraction classified right (``None`` for a class
            with no images).
        confusion: (K, K) int64 counts; row = true class, column = predicted class.
    """

    classes: tuple[str, ...]
    samples: int
    loss: float
    top1_error: float
    top5_error: float | None
    per_class_accuracy: tuple[float | None, ...]
    confusion: torch.Tensor

    def to_dict(self) -> dict:
        """A JSON-ready dict (the confusion matrix as nested lists)."""
        return {
            "samples": self.samples,
            "loss": self.loss,
            "top1_error": self.top1_error,
            "top5_error": self.top5_error,
            "classes": list(self.classes),
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy, strict=True)),
            "confusion": self.confusion.tolist(),
        }


class MetricAccumulator:
    """Running counts for ``EvalResult``.

    Args:
        classes: class names; their number K fixes the width of the scores.
    """

    def __init__(self, classes: tuple[str, ...] | list[str]) -> None:
        if not classes:
            raise ConfigError("metrics need at least one class")
        self.classes = tuple(classes)
        k = len(self.classes)
        self.confusion = torch.zeros(k, k, dtype=torch.int64)
        self.top5_hits = 0
        self.nll_sum = 0.0
        self.samples = 0

    def update(self, log_probs: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch.

        Args:
            log_probs: (B, K) log-probabilities (``log_softmax`` of the logits, or the log of
                crop-averaged probabilities).
            labels: (B,) int64 true classes.
        """
        k = len(self.classes)
        if log_probs.ndim != 2 or log_probs.shape[1] != k or log_probs.shape[0] != len(labels):
            raise ConfigError(
                f"scores of shape {tuple(log_probs.shape)} do not match {len(labels)} labels "
                f"and {k} classes"
            )
        log_probs, labels = log_probs.detach().float().cpu(), labels.cpu()
        preds = log_probs.argmax(dim=1)  # (B,)
        pairs = labels * k + preds  # row-major index into the (K, K) matrix
        self.confusion += torch.bincount(pairs, minlength=k * k).view(k, k)
        if k >= 5:
            top5 = log_probs.topk(5, dim=1).indices  # (B, 5)
            self.top5_hits += int((top5 == labels[:, None]).any(dim=1).sum())
        self.nll_sum -= float(log_probs.gather(1, labels[:, None]).double().sum())
        self.samples += len(labels)

    def result(self) -> EvalResult:
        """The metrics of everything added so far."""
        n = self.samples
        if n == 0:
            raise ConfigError("no samples were evaluated")
        per_class = self.confusion.sum(dim=1)  # (K,) images per true class
        correct = self.confusion.diagonal()
        accuracy = tuple(
            float(c) / float(t) if t > 0 else None
            for c, t in zip(correct.tolist(), per_class.tolist(), strict=True)
        )
        return EvalResult(
            classes=self.classes,
            samples=n,
            loss=self.nll_sum / n,
            top1_error=1.0 - float(correct.sum()) / n,
            top5_error=1.0 - self.top5_hits / n if len(self.classes) >= 5 else None,
            per_class_accuracy=accuracy,
            confusion=self.confusion.clone(),
        )
