"""Loss landscapes (Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss Landscape of
Neural Nets", arXiv:1712.09913).

Li et al. plot the loss around trained weights ``theta`` along random directions:
``f(a) = L(theta + a d)`` and ``f(a, b) = L(theta + a d + b e)``. The scale of a random direction
means nothing by itself (a net with BN does not change when a filter is scaled), so they
normalise it filter by filter: each filter of ``d`` (a conv's output channel, a row of the fc
weight) is drawn from N(0, 1) and rescaled to the norm of the same filter of ``theta``,
``d_ij <- d_ij / |d_ij| * |theta_ij|``. Parameters of one dimension (BN scales and shifts,
biases) get a zero direction, as in the paper; BN running statistics are buffers and never move.
Their finding on CIFAR-10: ResNet-56 sits in a smooth, nearly convex basin, while the landscape of
its plain twin is chaotic, with the minimum in a narrow, non-convex valley.

The loss is the mean cross-entropy and the error the top-1 error, in eval mode (BN with the
trained running statistics), on a fixed subset of the training set given as batches. The grid is
an argument; ``jobs`` processes compute it, writing each finished point to disk atomically, so
that a killed computation resumes without computing a finished point again
(``resnetlab.analysis.landscape_grid``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.analysis.landscape_grid import GridSpec, compute_grid
from resnetlab.analysis.netinfo import Batches, check_batches, describe, preserved
from resnetlab.analysis.records import json_numbers
from resnetlab.errors import ConfigError

DEFAULT_GRID = tuple(float(v) for v in np.linspace(-1.0, 1.0, 21))  # Li et al. plot [-1, 1]
FILTER_EPS = 1e-10  # keeps a filter of zeros (a zero-initialised BN's conv) at zero


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> list[torch.Tensor]:
    """One random direction in weight space, normalised filter by filter (Li et al. §4).

    Args:
        model: the trained net; its parameters give the filter norms.
        generator: the CPU generator the Gaussian draws come from.

    Returns:
        One tensor per parameter, in ``model.parameters()`` order: zeros for parameters of one
        dimension, else each filter (slice along dimension 0) with its weight filter's norm.
    """
    direction = []
    for p in model.parameters():
        if p.dim() <= 1:
            direction.append(torch.zeros_like(p, memory_format=torch.contiguous_format))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p)
        d_norm = d.flatten(1).norm(dim=1)  # (filters,)
        p_norm = p.detach().flatten(1).norm(dim=1)
        scale = p_norm / (d_norm + FILTER_EPS)
        direction.append(d * scale.view(-1, *([1] * (p.dim() - 1))))
    return direction


def random_directions(model: nn.Module, seed: int = 0, count: int = 2) -> list[list[torch.Tensor]]:
    """``count`` filter-normalised directions drawn one after another from ``seed``: the first is
    the same whether one or two are drawn, so the 1-D curve lies on the 2-D surface's axis."""
    generator = torch.Generator().manual_seed(seed)
    return [filter_normalized_direction(model, generator) for _ in range(count)]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches) -> tuple[float, float]:
    """``(mean cross-entropy, top-1 error)`` on the batches in eval mode; the model's mode is
    restored. The loss is the sum over the batches, in their order, divided by the count."""
    check_batches(batches)
    loss, wrong, total = 0.0, 0, 0
    with preserved(model):
        model.eval()
        for images, labels in batches:
            logits = model(images)
            loss += F.cross_entropy(logits, labels, reduction="sum").item()
            wrong += int((logits.argmax(1) != labels).sum())
            total += len(labels)
    return loss / total, wrong / total


@contextlib.contextmanager
def moved(
    model: nn.Module, directions: Sequence[Sequence[torch.Tensor]], coords: Sequence[float]
) -> Iterator[nn.Module]:
    """The model with weights ``theta + sum_i coords[i] * directions[i]`` for the body of the
    ``with``; then ``theta`` again, bit for bit."""
    with preserved(model):
        set_weights(model, [p.detach().clone() for p in model.parameters()], directions, coords)
        yield model


@torch.no_grad()
def set_weights(
    model: nn.Module,
    origin: Sequence[torch.Tensor],
    directions: Sequence[Sequence[torch.Tensor]],
    coords: Sequence[float],
) -> None:
    """Write ``origin + sum_i coords[i] * directions[i]`` into the parameters. A coordinate of 0
    adds nothing, so the origin itself is restored exactly (``theta + 0 * d`` is not always
    ``theta`` bit for bit: ``-0.0``)."""
    for i, p in enumerate(model.parameters()):
        p.copy_(origin[i])
        for direction, c in zip(directions, coords, strict=True):
            if c:
                p.add_(direction[i], alpha=float(c))


class Evaluator:
    """A model, its directions and the data: the loss at any point of a grid (built once in
    each process that computes points)."""

    def __init__(self, model: nn.Module, batches: Batches, spec: GridSpec) -> None:
        self.model, self.batches = model, batches
        self.directions = random_directions(model, spec.seed, 1 if spec.betas is None else 2)
        self.origin = [p.detach().clone() for p in model.parameters()]

    def point(self, coords: tuple[float, ...]) -> tuple[float, float]:
        """``(loss, error)`` at ``theta + sum_i coords[i] * directions[i]``."""
        set_weights(self.model, self.origin, self.directions, coords)
        return evaluate(self.model, self.batches)


@dataclass(frozen=True)
class Landscape:
    """The loss around one net's trained weights.

    Attributes:
        label: the model's name.
        alphas: (A,) coordinates along the first direction.
        betas: (B,) coordinates along the second direction; ``None`` for a 1-D curve.
        loss: (A,) or (B, A) mean cross-entropy; row ``j`` of a surface has ``beta = betas[j]``.
        error: the top-1 error, shaped as ``loss``.
        centre_loss: the loss of the trained weights themselves.
        centre_error: their error.
        seed: the seed of the directions.
        images: how many images every point was evaluated on.
        computed: points evaluated by this call (the rest were read back from ``out_dir``).
    """

    label: str
    alphas: np.ndarray
    betas: np.ndarray | None
    loss: np.ndarray
    error: np.ndarray
    centre_loss: float
    centre_error: float
    seed: int
    images: int
    computed: int = field(default=0, compare=False)

    def to_dict(self) -> dict:
        """A JSON-ready record (without ``computed``, which depends on the resumes)."""
        return {
            "label": self.label,
            "alphas": self.alphas.tolist(),
            "betas": None if self.betas is None else self.betas.tolist(),
            "loss": json_numbers(self.loss),
            "error": json_numbers(self.error),
            "centre_loss": json_numbers(self.centre_loss),
            "centre_error": self.centre_error,
            "seed": self.seed,
            "images": self.images,
        }


def loss_landscape(
    model: nn.Module,
    batches: Batches,
    alphas: Sequence[float] = DEFAULT_GRID,
    betas: Sequence[float] | None = None,
    seed: int = 0,
    jobs: int = 1,
    out_dir: str | Path | None = None,
    label: str | None = None,
) -> Landscape:
    """The loss along one (``betas=None``) or two filter-normalised random directions.

    Args:
        model: the trained net; afterwards exactly as it was.
        batches: the fixed subset of the training set, as (images, labels) batches (un-augmented).
        alphas: grid coordinates along the first direction.
        betas: grid coordinates along the second direction, or ``None`` for a 1-D curve.
        seed: the seed of the directions.
        jobs: processes that compute the grid (spawned, each with an equal share of the
            threads); 1 computes it in this process. Several jobs need a model on the CPU.
        out_dir: where finished points are kept (``landscape.json`` and ``chunks/``); a rerun
            with the same model, data and settings reads them instead of computing them again.
        label: the model's name; by default its resnetlab name.

    Raises:
        ConfigError: a bad grid, ``jobs`` below 1, or ``out_dir`` holding another landscape.
    """
    check_batches(batches)
    spec = GridSpec.make(alphas, betas, seed)
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer; got {jobs!r}")
    centre_loss, centre_error = evaluate(model, batches)
    values, computed = compute_grid(Evaluator, model, batches, spec, jobs, out_dir)
    shape = (len(spec.alphas),) if spec.betas is None else (len(spec.betas), len(spec.alphas))
    return Landscape(
        label=label or describe(model)[0],
        alphas=np.array(spec.alphas),
        betas=None if spec.betas is None else np.array(spec.betas),
        loss=values[:, 0].reshape(shape),
        error=values[:, 1].reshape(shape),
        centre_loss=centre_loss,
        centre_error=centre_error,
        seed=seed,
        images=sum(len(labels) for _, labels in batches),
        computed=computed,
    )
