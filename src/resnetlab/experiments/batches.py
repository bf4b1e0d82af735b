"""The images an analysis experiment measures nets on: fixed, seeded draws of real data.

Every net of an experiment sees the same images: a draw seeded by ``DRAW_SEED`` alone (not by the
nets' seeds), un-augmented and normalised as the nets see them in training. At initialisation that
is the train split's own mean and std; for a trained net, the mean and std of its checkpoint.
"""

from __future__ import annotations

import hashlib

import torch

from resnetlab.data import load_dataset, make_loader
from resnetlab.data.info import DatasetInfo
from resnetlab.evaluation.data import load_eval_split
from resnetlab.train import RunConfig

DRAW_SEED = 0  # seed of every draw of images: one and the same images for every net and seed

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def draw(ds, count: int, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of ``ds`` (all of them when it has fewer) drawn without replacement by
    ``DRAW_SEED``, un-augmented and normalised with ``ds``'s statistics.

    Returns:
        (images (N, C, H, W) float32, labels (N,)) on ``device``.
    """
    count = min(count, len(ds))
    # A training loader's first batch is a seeded draw without replacement; without its
    # augmentation the images are the evaluation view.
    loader = make_loader(
        ds, count, train=True, augment=False, seed=DRAW_SEED, device=device, workers=0
    )
    images, labels = next(iter(loader.epoch(0)))
    return images, labels


def draw_batches(ds, count: int, batch_size: int, device: str | torch.device = "cpu") -> Batches:
    """``draw(ds, count)`` cut into batches of ``batch_size`` (memory only: the analyses run
    in eval mode, where the batches do not interact)."""
    images, labels = draw(ds, count, device)
    return list(zip(images.split(batch_size), labels.split(batch_size), strict=True))


def init_batch(cfg: RunConfig, count: int) -> tuple[torch.Tensor, torch.Tensor, DatasetInfo]:
    """``count`` images of the train split of ``cfg``'s data, normalised with its statistics as
    training normalises them: what a net sees in its first step.

    Returns:
        (images (N, C, H, W), labels (N,), the dataset's info).
    """
    d = cfg.data
    ds = load_dataset(
        d.name,
        "train",
        d.root,
        download=d.download,
        verify=d.verify,
        strict=d.strict,
        image_size=d.image_size,
        test_fraction=d.test_fraction,
    )
    images, labels = draw(ds, count)
    return images, labels, ds.info


def checkpoint_batches(
    ckpt: dict, split: str, count: int, batch_size: int, device: str | torch.device = "cpu"
) -> Batches:
    """A fixed draw of ``count`` images of a trained net's own data: ``split`` ``"test"`` (its
    test split) or ``"train"`` (the part of the train split it trained on), normalised with the
    checkpoint's mean and std."""
    ds = load_eval_split(ckpt["data"], ckpt["config"], split)
    return draw_batches(ds, count, batch_size, device)


def tensors_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' shapes, types and bytes: which images a kept result was of."""
    digest = hashlib.sha256()
    for t in tensors:
        flat = t.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{flat.dtype}:{tuple(t.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
