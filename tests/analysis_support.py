"""Small trained nets and data for the lesion and landscape tests.

``toy_data`` is four classes of 8x8 images (a fixed random template per class plus noise), easy
enough that a CIFAR net learns it in a few dozen steps; ``trained`` trains a net on it with plain
SGD, so that its BN statistics and weights are those of a trained net rather than of the init.
The accuracy does not matter: every test checks a property that holds for any weights.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from resnetlab.analysis.netinfo import seeded
from resnetlab.models.resnet import cifar_resnet

CLASSES = 4


def toy_data(count: int, seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images (count, 3, size, size) and their labels (count,)."""
    g = torch.Generator().manual_seed(1234)  # the same templates for every split
    templates = torch.randn(CLASSES, 3, size, size, generator=g)
    g.manual_seed(seed)
    labels = torch.randint(0, CLASSES, (count,), generator=g)
    images = templates[labels] + 0.8 * torch.randn(count, 3, size, size, generator=g)
    return images, labels


def batches(
    count: int, batch_size: int = 32, seed: int = 1
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed list of (images, labels) batches."""
    images, labels = toy_data(count, seed)
    return list(zip(images.split(batch_size), labels.split(batch_size), strict=True))


@functools.cache
def _trained_state(depth: int, residual: bool, overrides: tuple, steps: int) -> dict:
    with seeded(0):
        model = cifar_resnet(depth, CLASSES, residual=residual, **dict(overrides))
    images, labels = toy_data(steps * 32, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in zip(images.split(32), labels.split(32), strict=True):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def trained(depth: int = 8, residual: bool = True, steps: int = 30, **overrides) -> torch.nn.Module:
    """A CIFAR net trained for ``steps`` SGD steps on ``toy_data``, in eval mode (a fresh copy
    every call; the training runs once per process and setting)."""
    with seeded(0):
        model = cifar_resnet(depth, CLASSES, residual=residual, **overrides)
    model.load_state_dict(_trained_state(depth, residual, tuple(sorted(overrides.items())), steps))
    return model.eval()
