"""Gradient flow from a run's ``grad_norms.jsonl``: each layer's weight-gradient norm over training.

Training records ``{"iteration": i, "norms": {"<param name>": L2 norm}}`` for every conv and fc
weight after the backward pass, every ``grad_norms_every`` iterations. Here they become one matrix,
layers (in network order, as the model lists its parameters) by recorded iterations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnetlab.analysis.records import read_jsonl
from resnetlab.errors import DataError


@dataclass(frozen=True)
class GradNorms:
    """Weight-gradient norms of one run.

    Attributes:
        layers: parameter names in network order (``conv1.weight``, ..., ``fc.weight``).
        iterations: (T,) the iterations recorded.
        norms: (L, T) L2 norm of each layer's weight gradient at each recorded iteration.
    """

    layers: tuple[str, ...]
    iterations: np.ndarray
    norms: np.ndarray

    def at(self, iteration: int) -> np.ndarray:
        """(L,) the norms of the record nearest to ``iteration``."""
        return self.norms[:, int(np.argmin(np.abs(self.iterations - iteration)))]


def load_grad_norms(run_dir: str | Path) -> GradNorms:
    """Read ``run_dir/grad_norms.jsonl``.

    Raises:
        DataError: the file is missing, empty, or its records name different layers.
    """
    path = Path(run_dir) / "grad_norms.jsonl"
    records = read_jsonl(path)
    if not records:
        raise DataError(f"{path}: no gradient-norm records (was grad_norms_every 0?)")
    layers = tuple(records[0]["norms"])
    for r in records:
        if tuple(r.get("norms", ())) != layers:
            raise DataError(
                f"{path}: the record of iteration {r.get('iteration')} names "
                "other layers than the first record"
            )
    iterations = np.array([r["iteration"] for r in records], dtype=np.int64)
    norms = np.array([[r["norms"][n] for r in records] for n in layers], dtype=np.float64)
    return GradNorms(layers, iterations, norms)


def pick_iterations(iterations: np.ndarray, count: int = 4) -> list[int]:
    """A few recorded iterations spread over the run: the first, the last, and between them
    evenly on a log scale (early training changes fastest)."""
    if len(iterations) <= count:
        return [int(i) for i in iterations]
    first, last = max(int(iterations[0]), 1), int(iterations[-1])
    targets = np.geomspace(first, last, count)
    picked = {int(iterations[np.argmin(np.abs(iterations - t))]) for t in targets}
    picked |= {int(iterations[0]), last}
    return sorted(picked)


def first_to_last_ratio(grads: GradNorms, weights: Mapping[str, int] | None = None) -> float:
    """How much the gradient shrinks on its way back: the median over the records of the first
    conv's gradient norm divided by the last conv's (the classifier left out). Below 1: the
    gradient reaching the first layers is smaller than at the top.

    Args:
        grads: the run's gradient norms.
        weights: each layer's number of weights (``{"conv1.weight": 144, ...}``); given, each
            norm is divided by the square root of its layer's count first, so the ratio is of
            gradients per weight (an L2 norm grows as the square root of the weights it sums).
    """
    convs = [i for i, name in enumerate(grads.layers) if not name.startswith("fc.")]
    if len(convs) < 2:
        raise DataError("first_to_last_ratio needs at least two conv layers")
    first, last = grads.norms[convs[0]], grads.norms[convs[-1]]
    if weights is not None:
        first = first / np.sqrt(weights[grads.layers[convs[0]]])
        last = last / np.sqrt(weights[grads.layers[convs[-1]]])
    return float(np.median(first / np.maximum(last, np.finfo(np.float64).tiny)))
