"""Top-k class predictions for image files."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from resnetlab.errors import ConfigError
from resnetlab.evaluation.preprocess import Preprocess

BATCH = 32  # images decoded and run together; bounds memory for long file lists


@dataclass(frozen=True)
class Prediction:
    """The most probable classes of one image.

    Attributes:
        image: the file, as given.
        top: (class name, class index, probability) pairs, most probable first.
    """

    image: str
    top: tuple[tuple[str, int, float], ...]

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "image": self.image,
            "top": [{"class": c, "index": i, "probability": p} for c, i, p in self.top],
        }


def predict_files(
    model: nn.Module,
    prep: Preprocess,
    paths: Sequence[str | Path],
    classes: Sequence[str],
    k: int = 5,
) -> Iterator[Prediction]:
    """Predict the top ``k`` classes (at most all of them) of each image file, in order.

    Args:
        model: the trained network, in eval mode; inputs go to its device.
        prep: the preprocessing of the model's training data.
        paths: image files (any format ``resnetlab.data.images.decode_image`` reads).
        classes: class names; index = model output.
        k: how many classes to report per image.

    Returns:
        An iterator of one ``Prediction`` per file; files are decoded as it advances, in
        batches of ``BATCH``.

    Raises:
        DataError: (while iterating) a file that is missing or not a readable image, naming it.
        ConfigError: ``k`` below 1.
    """
    if k < 1:  # checked here, not in the generator, so that it fails before any output
        raise ConfigError(f"--top-k must be at least 1; got {k}")
    return _predict(model, prep, [str(p) for p in paths], tuple(classes), min(k, len(classes)))


def _predict(
    model: nn.Module, prep: Preprocess, paths: list[str], classes: tuple[str, ...], k: int
) -> Iterator[Prediction]:
    device = next(model.parameters()).device
    for start in range(0, len(paths), BATCH):
        chunk = paths[start : start + BATCH]
        images = torch.stack([prep.load(p) for p in chunk]).to(device)  # (B, C, H, W)
        with torch.no_grad():
            probs = torch.softmax(model(images).float(), dim=1).cpu()  # (B, K)
        values, indices = probs.topk(k, dim=1)  # (B, k) each
        for path, vals, idxs in zip(chunk, values.tolist(), indices.tolist(), strict=True):
            top = tuple((classes[i], i, v) for v, i in zip(vals, idxs, strict=True))
            yield Prediction(path, top)
