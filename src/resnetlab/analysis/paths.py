"""The path view of a ResNet (Veit, Wilber, Belongie 2016, "Residual Networks Behave Like
Ensembles of Relatively Shallow Networks", arXiv:1605.06431, §3 and §6).

Unrolled, a net of ``n`` residual blocks is ``2^n`` paths: each block is either taken (its
branch ``F``) or skipped (its shortcut). ``C(n, k)`` paths go through ``k`` branches, so path
lengths follow the binomial distribution. A plain block has no shortcut and must be taken, so a
plain net is one path of length ``n``; ``path_length_counts`` reads this from the model's blocks.

Which paths carry the gradient? Veit et al. measure it by sampling: the forward pass is the whole
net's, as in training; in the backward pass exactly ``k`` randomly chosen blocks pass the gradient
through their branch and the other ``n - k`` through their shortcut only, so the gradient
that reaches the input of the first block is that of paths of length ``k`` alone. We do the
same: every block is replaced for the measurement by ``RoutedBlock``, which computes the block's
own output from the same modules but detaches (for the backward pass only) the route that is not
taken; the ReLU after the addition still sees the whole sum. The magnitude is the L2 norm of the
gradient of the batch's mean cross-entropy with respect to the first block's input, over one fixed
batch in eval mode. Lengths with at most ``samples`` paths are enumerated; the others are sampled
``samples`` times (seeded). By linearity the gradients of all ``2^n`` routes add up to the full
gradient (tested). Veit et al. find the paths' gradient shrinking exponentially with length, so
that, weighted by the number of paths, almost all of it comes from short paths (5 to 17 blocks of
the 54 in ResNet-110).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.analysis.netinfo import describe, preserved, replaced, residual_blocks
from resnetlab.analysis.records import from_json_numbers, json_numbers
from resnetlab.errors import ConfigError
from resnetlab.nn.blocks import _ResidualBlock


def path_length_counts(model: nn.Module) -> list[int]:
    """How many input-to-output paths of each length (branches taken, 0..n) the net has.

    The product over the blocks of ``(1 + z)`` (residual: skip or take) or ``z`` (plain: take),
    read as a polynomial in ``z``: exact integers, ``C(n, k)`` for a ResNet of ``n`` blocks.
    """
    counts = [1]
    for _, block in residual_blocks(model):
        taken = [0, *counts]  # the branch: one block longer
        skipped = [*counts, 0] if block.residual else [0] * (len(counts) + 1)
        counts = [a + b for a, b in zip(taken, skipped, strict=True)]
    return counts


def path_length_distribution(model: nn.Module) -> np.ndarray:
    """(n + 1,) the share of the net's paths that have each length (sums to 1)."""
    counts = path_length_counts(model)
    total = sum(counts)
    return np.array([c / total for c in counts])


class RoutedBlock(nn.Module):
    """A block whose forward value is the block's own, but whose backward pass goes through the
    branch only (``through_branch``) or through the shortcut only."""

    def __init__(self, block: _ResidualBlock, through_branch: bool) -> None:
        super().__init__()
        if not block.residual:
            raise ConfigError("a plain block has one route: routing needs residual blocks")
        self.block, self.through_branch = block, through_branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        act = b.relu(b.bn1(x)) if b.preact else x  # what branch and projection read
        identity = x if b.downsample is None else b.downsample(act)
        out = b.branch(act)
        if self.through_branch:
            identity = identity.detach()
        else:
            out = out.detach()
        return out + identity if b.preact else b.relu(out + identity)


@dataclass(frozen=True)
class PathGradients:
    """The gradient magnitude that the paths of each length carry to the input.

    Attributes:
        label: the model's name.
        counts: (n + 1,) number of paths of each length (binomial).
        mean_norm: (n + 1,) mean gradient norm of one path of each length (NaN: not measured).
        std_norm: (n + 1,) standard deviation of that norm over the sampled paths.
        samples: (n + 1,) paths measured per length.
        full_norm: the gradient norm of the whole net (every path at once).
        seed: the seed of the sampling.
    """

    label: str
    counts: np.ndarray
    mean_norm: np.ndarray
    std_norm: np.ndarray
    samples: np.ndarray
    full_norm: float
    seed: int

    def total(self) -> np.ndarray:
        """(n + 1,) the magnitude all paths of each length carry together, ``count * mean``
        (Veit et al. Figure 6(c))."""
        return self.counts * self.mean_norm

    def to_dict(self) -> dict:
        """A JSON-ready record (``None`` for lengths not measured)."""
        return {
            "label": self.label,
            "counts": [int(c) for c in self.counts],
            "mean_norm": json_numbers(self.mean_norm),
            "std_norm": json_numbers(self.std_norm),
            "total": json_numbers(self.total()),
            "samples": [int(s) for s in self.samples],
            "full_norm": json_numbers(self.full_norm),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, record: dict) -> PathGradients:
        """The record ``to_dict`` wrote (``None`` read back as NaN)."""
        return cls(
            label=record["label"],
            counts=np.array(record["counts"], dtype=np.float64),
            mean_norm=from_json_numbers(record["mean_norm"]),
            std_norm=from_json_numbers(record["std_norm"]),
            samples=np.array(record["samples"], dtype=int),
            full_norm=from_json_numbers(record["full_norm"]),
            seed=int(record["seed"]),
        )


def path_input_gradient(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    through: Collection[int] | None = None,
) -> torch.Tensor:
    """The gradient of the mean cross-entropy with respect to the first block's input.

    Args:
        model: a resnetlab ResNet; evaluated in eval mode and left as it was.
        images: (B, C, H, W) one batch.
        labels: (B,) its classes.
        through: indices of the blocks whose branch passes the gradient (all others: their
            shortcut); ``None``: the ordinary backward pass through every route.

    Returns:
        (B, C', H', W') the gradient at the first block's input.
    """
    blocks = residual_blocks(model)
    leaf: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: tuple) -> tuple:
        leaf.append(inputs[0].detach().requires_grad_(True))
        return (leaf[-1],)

    with preserved(model), _routed(model, blocks, through):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)  # input gradients only
        first = model.get_submodule(blocks[0][0])
        handle = first.register_forward_pre_hook(capture)
        try:
            loss = F.cross_entropy(model(images), labels)
        finally:
            handle.remove()
        (grad,) = torch.autograd.grad(loss, leaf[0])
    return grad


def path_gradients(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    samples: int = 8,
    lengths: Sequence[int] | None = None,
    seed: int = 0,
    label: str | None = None,
) -> PathGradients:
    """Measure the gradient magnitude of paths of each length (the module docstring's method).

    Args:
        model: a trained resnetlab ResNet (all blocks residual).
        images: (B, C, H, W) one batch of training images.
        labels: (B,) their classes.
        samples: paths measured per length (all of them where there are fewer).
        lengths: which lengths to measure; by default every length 0..n.
        seed: seed of the sampled paths (numpy's default generator).
        label: the model's name; by default its resnetlab name.
    """
    blocks = residual_blocks(model)
    n = len(blocks)
    lengths = list(range(n + 1)) if lengths is None else list(lengths)
    if any(not 0 <= k <= n for k in lengths):
        raise ConfigError(f"path lengths must be between 0 and {n}")
    rng = np.random.default_rng(seed)
    mean, std, count = np.full(n + 1, np.nan), np.full(n + 1, np.nan), np.zeros(n + 1, int)
    for k in lengths:
        if math.comb(n, k) <= samples:
            subsets = [set(s) for s in itertools.combinations(range(n), k)]
        else:
            subsets = [set(rng.choice(n, size=k, replace=False).tolist()) for _ in range(samples)]
        norms = [
            path_input_gradient(model, images, labels, s).double().norm().item() for s in subsets
        ]
        mean[k], std[k], count[k] = np.mean(norms), np.std(norms), len(norms)
    full = path_input_gradient(model, images, labels).double().norm().item()
    return PathGradients(
        label=label or describe(model)[0],
        counts=np.array(path_length_counts(model), dtype=np.float64),
        mean_norm=mean,
        std_norm=std,
        samples=count,
        full_norm=full,
        seed=seed,
    )


def _routed(
    model: nn.Module, blocks: list[tuple[str, _ResidualBlock]], through: Collection[int] | None
) -> contextlib.AbstractContextManager:
    """Every block replaced by its ``RoutedBlock`` (nothing replaced for ``through=None``)."""
    if through is None:
        return contextlib.nullcontext()
    if not all(b.residual for _, b in blocks):
        raise ConfigError("the path view needs a ResNet: a plain net has a single path")
    return replaced(model, {n: RoutedBlock(b, i in through) for i, (n, b) in enumerate(blocks)})
