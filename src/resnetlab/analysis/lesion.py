"""Lesion studies (Veit, Wilber, Belongie 2016, "Residual Networks Behave Like Ensembles of
Relatively Shallow Networks", arXiv:1605.06431).

Veit et al. delete blocks of a trained ResNet at test time. Deleting any single block of
ResNet-110 on CIFAR-10 barely changes its test error, except for the few blocks that downsample;
deleting any single layer of VGG, a plain net, leaves it at chance. Deleting ``k`` random blocks
raises the error smoothly with ``k``, and so does swapping blocks. Their reading: a ResNet is an
ensemble of ``2^n`` paths of different lengths that do not depend strongly on each other.

- **Deleting a residual block** keeps its shortcut: ``y = relu(shortcut(x))`` for a
  post-activation block (the ReLU after the addition stays; only ``F(x)`` goes) and
  ``y = shortcut(x)`` for a pre-activation block (nothing follows its addition), with the
  block's own shortcut: the identity, option A, or the projection (B/C) with its BN.
- **Deleting a plain block** puts the parameter-free identity in its place, or option A's map
  (subsample, zero channels) where the shape changes; the plain net has no other path, so this
  cuts the only one, as the paper's VGG comparison does. No ReLU is needed: a plain block's input
  is the previous block's ReLU output, already non-negative.
- **Blocks that change shape** (downsampling) are flagged. They are in the single deletions but,
  unless asked, left out of the random deletions and the swaps, which only make sense between
  blocks of one shape.
- **Error**: the top-1 error on the given batches, in eval mode.

Everything is done by module replacement inside context managers (``lesioned``, ``swapped``) that
put the original module objects back, also on an error: afterwards the model is exactly as
before (its modules, names, parameters, buffers and mode).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnetlab.analysis.netinfo import (
    Batches,
    block_shape,
    changes_shape,
    check_batches,
    describe,
    preserved,
    replaced,
    residual_blocks,
)
from resnetlab.analysis.records import from_json_numbers, json_numbers
from resnetlab.errors import ConfigError
from resnetlab.nn.blocks import _ResidualBlock
from resnetlab.nn.shortcuts import ZeroPadShortcut


class DeletedBlock(nn.Module):
    """What is left of a block deleted at test time: its shortcut path alone (see the module
    docstring). Holds the block's own shortcut modules, so nothing is copied."""

    def __init__(self, block: _ResidualBlock) -> None:
        super().__init__()
        self.residual, self.preact = block.residual, block.preact
        c_in, c_out, stride = block_shape(block)
        if block.residual:
            self.shortcut = block.downsample  # None: the identity
            self.bn1 = block.bn1 if block.preact and block.downsample is not None else None
        else:  # the plain twin's parameter-free stand-in
            changes = c_in != c_out or stride != 1
            self.shortcut = ZeroPadShortcut(c_in, c_out, stride) if changes else None
            self.bn1 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return x if self.shortcut is None else self.shortcut(x)
        if self.preact:  # He et al. 2016: a projection takes the activated input
            if self.shortcut is None:
                return x
            return self.shortcut(torch.relu(self.bn1(x)))
        return torch.relu(x if self.shortcut is None else self.shortcut(x))


@contextlib.contextmanager
def lesioned(model: nn.Module, names: Iterable[str]) -> Iterator[nn.Module]:
    """Delete the named blocks (``layer2.3``) for the body of the ``with``; then put them back.

    Raises:
        ConfigError: a name is not a block of the model.
    """
    blocks = dict(residual_blocks(model))
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in blocks:
            raise ConfigError(f"{name!r} is not a block of the model (e.g. {next(iter(blocks))!r})")
    with replaced(model, {name: DeletedBlock(blocks[name]) for name in chosen}):
        yield model


@contextlib.contextmanager
def swapped(model: nn.Module, pairs: Iterable[tuple[str, str]]) -> Iterator[nn.Module]:
    """Exchange the named blocks of each pair for the body of the ``with``; then undo it.

    Raises:
        ConfigError: a name is not a block, a block is in two pairs, or the two blocks of a pair
            differ in shape (their outputs would not fit where the other one was).
    """
    blocks = dict(residual_blocks(model))
    pairs = list(pairs)
    used = [name for pair in pairs for name in pair]
    for name in used:
        if name not in blocks:
            raise ConfigError(f"{name!r} is not a block of the model")
    if len(set(used)) != len(used):
        raise ConfigError("a block can be in one swapped pair only")
    for a, b in pairs:
        if block_shape(blocks[a]) != block_shape(blocks[b]) or changes_shape(blocks[a]):
            raise ConfigError(f"blocks {a!r} and {b!r} do not have one and the same shape")
    replacement = {a: blocks[b] for a, b in pairs} | {b: blocks[a] for a, b in pairs}
    with replaced(model, replacement):
        yield model


@torch.no_grad()
def error_rate(model: nn.Module, batches: Batches) -> float:
    """Top-1 error of the model on the batches, in eval mode (the model's mode is restored)."""
    check_batches(batches)
    wrong = total = 0
    with preserved(model):
        model.eval()
        for images, labels in batches:
            wrong += int((model(images).argmax(1) != labels).sum())
            total += len(labels)
    return wrong / total


@dataclass(frozen=True)
class LesionStudy:
    """Test errors of one trained net with blocks deleted or swapped.

    Attributes:
        label: the model's name.
        residual: ResNet or plain twin.
        blocks: the block names in network order.
        changes_shape: per block, whether it downsamples (changes the output shape).
        baseline_error: the error of the intact net.
        single_error: (n,) the error with each single block deleted.
        deletion_errors: {k: errors of the draws with k random same-shape blocks deleted}.
        swap_errors: {k: errors of the draws with k random pairs of same-shape blocks swapped}.
        images: how many images each error was measured on.
        seed: the seed of the random draws.
    """

    label: str
    residual: bool
    blocks: tuple[str, ...]
    changes_shape: tuple[bool, ...]
    baseline_error: float
    single_error: np.ndarray
    deletion_errors: dict[int, list[float]]
    swap_errors: dict[int, list[float]]
    images: int
    seed: int

    def to_dict(self) -> dict:
        """A JSON-ready record (dictionary keys as strings, as JSON has them)."""
        return {
            "label": self.label,
            "residual": self.residual,
            "blocks": list(self.blocks),
            "changes_shape": list(self.changes_shape),
            "baseline_error": self.baseline_error,
            "single_error": json_numbers(self.single_error),
            "deletion_errors": {str(k): v for k, v in self.deletion_errors.items()},
            "swap_errors": {str(k): v for k, v in self.swap_errors.items()},
            "images": self.images,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, record: dict) -> LesionStudy:
        """The study ``to_dict`` wrote (``None`` read back as NaN, keys back to integers)."""
        return cls(
            label=record["label"],
            residual=bool(record["residual"]),
            blocks=tuple(record["blocks"]),
            changes_shape=tuple(bool(c) for c in record["changes_shape"]),
            baseline_error=float(record["baseline_error"]),
            single_error=from_json_numbers(record["single_error"]),
            deletion_errors={int(k): list(v) for k, v in record["deletion_errors"].items()},
            swap_errors={int(k): list(v) for k, v in record["swap_errors"].items()},
            images=int(record["images"]),
            seed=int(record["seed"]),
        )


def single_deletions(model: nn.Module, batches: Batches) -> np.ndarray:
    """(n,) the error with each block deleted alone, in network order."""
    return np.array([_error_without(model, batches, [name]) for name, _ in residual_blocks(model)])


def random_deletions(
    model: nn.Module,
    batches: Batches,
    ks: Sequence[int] | None = None,
    draws: int = 5,
    seed: int = 0,
    include_shape_changing: bool = False,
) -> dict[int, list[float]]:
    """The error with ``k`` random blocks deleted, ``draws`` times for each ``k``.

    Args:
        ks: how many blocks to delete; by default every k from 1 to the number of candidates.
        draws: random sets per ``k``; where fewer sets exist, each one once.
        seed: seed of the draws (numpy's default generator).
        include_shape_changing: also delete downsampling blocks.
    """
    names = [n for n, b in residual_blocks(model) if include_shape_changing or not changes_shape(b)]
    ks = list(ks) if ks is not None else list(range(1, len(names) + 1))
    if any(not 1 <= k <= len(names) for k in ks):
        raise ConfigError(f"every k must be between 1 and {len(names)} (the blocks to delete)")
    rng = np.random.default_rng(seed)
    errors = {}
    for k in ks:
        sets = _draw_subsets(rng, len(names), k, draws)
        errors[k] = [_error_without(model, batches, [names[i] for i in s]) for s in sets]
    return errors


def random_swaps(
    model: nn.Module,
    batches: Batches,
    ks: Sequence[int] | None = None,
    draws: int = 5,
    seed: int = 0,
) -> dict[int, list[float]]:
    """The error with ``k`` random disjoint pairs of same-shape blocks swapped, ``draws`` times
    for each ``k`` (by default every k from 1 to the most pairs there are)."""
    groups: dict[tuple[int, int, int], list[str]] = {}
    for name, block in residual_blocks(model):
        if not changes_shape(block):
            groups.setdefault(block_shape(block), []).append(name)
    most = sum(len(g) // 2 for g in groups.values())
    ks = list(ks) if ks is not None else list(range(1, most + 1))
    if any(not 1 <= k <= most for k in ks):
        raise ConfigError(f"every k must be between 1 and {most} (the disjoint pairs there are)")
    rng = np.random.default_rng(seed)
    errors = {}
    for k in ks:
        errors[k] = []
        for _ in range(draws):
            with swapped(model, _draw_pairs(rng, list(groups.values()), k)):
                errors[k].append(error_rate(model, batches))
    return errors


def lesion_study(
    model: nn.Module,
    batches: Batches,
    draws: int = 5,
    seed: int = 0,
    deletion_ks: Sequence[int] | None = None,
    swap_ks: Sequence[int] | None = None,
    label: str | None = None,
) -> LesionStudy:
    """Single deletions, random deletions and random swaps of one trained net.

    Args:
        model: a trained resnetlab ResNet or plain net; left exactly as it was.
        batches: the test set (or a fixed part of it) as a list of (images, labels) batches.
        draws: random sets per k.
        seed: seed of the draws.
        deletion_ks: how many blocks to delete (default: 1..n of the same-shape blocks).
        swap_ks: how many pairs to swap (default: 1..the most disjoint pairs).
        label: the model's name; by default its resnetlab name.
    """
    check_batches(batches)
    blocks = residual_blocks(model)
    name, _, residual, _ = describe(model)
    return LesionStudy(
        label=label or name,
        residual=bool(residual),
        blocks=tuple(n for n, _ in blocks),
        changes_shape=tuple(changes_shape(b) for _, b in blocks),
        baseline_error=error_rate(model, batches),
        single_error=single_deletions(model, batches),
        deletion_errors=random_deletions(model, batches, deletion_ks, draws, seed),
        swap_errors=random_swaps(model, batches, swap_ks, draws, seed),
        images=sum(len(labels) for _, labels in batches),
        seed=seed,
    )


def _error_without(model: nn.Module, batches: Batches, names: list[str]) -> float:
    with lesioned(model, names):
        return error_rate(model, batches)


def _draw_subsets(rng: np.random.Generator, n: int, k: int, draws: int) -> list[list[int]]:
    """``draws`` random k-subsets of range(n); all of them, once each, where there are fewer."""
    if math.comb(n, k) <= draws:
        return [list(s) for s in itertools.combinations(range(n), k)]
    return [sorted(rng.choice(n, size=k, replace=False).tolist()) for _ in range(draws)]


def _draw_pairs(rng: np.random.Generator, groups: list[list[str]], k: int) -> list[tuple[str, str]]:
    """k disjoint pairs, each inside one group of same-shape blocks."""
    free = [list(g) for g in groups]
    pairs = []
    for _ in range(k):
        open_groups = [g for g in free if len(g) >= 2]
        group = open_groups[int(rng.integers(len(open_groups)))]
        i, j = sorted(rng.choice(len(group), size=2, replace=False).tolist(), reverse=True)
        pairs.append((group.pop(i), group.pop(j)))
    return pairs
