"""Training curves from a run's ``metrics.jsonl``: error against iterations (Figure 6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnetlab.analysis.records import read_jsonl
from resnetlab.errors import DataError


@dataclass(frozen=True)
class Curves:
    """The error curves of one run (or the mean of several runs of one recipe).

    Attributes:
        train_iterations: (N,) iteration of each training record.
        train_error: (N,) running training error (train mode, augmented batches) at those points.
        eval_iterations: (M,) iteration of each evaluation.
        test_error: (M,) test error of each evaluation.
        runs: how many runs were averaged.
    """

    train_iterations: np.ndarray
    train_error: np.ndarray
    eval_iterations: np.ndarray
    test_error: np.ndarray
    runs: int = 1


def load_curves(run_dir: str | Path) -> Curves:
    """Read ``run_dir/metrics.jsonl``; a run with no records raises ``DataError``."""
    path = Path(run_dir) / "metrics.jsonl"
    records = read_jsonl(path)
    train = [r for r in records if r.get("kind") == "train" and "train_error" in r]
    evals = [r for r in records if r.get("kind") == "eval" and "test_error" in r]
    if not train and not evals:
        raise DataError(f"{path}: no training or evaluation records")
    return Curves(
        np.array([r["iteration"] for r in train], dtype=np.int64),
        np.array([r["train_error"] for r in train], dtype=np.float64),
        np.array([r["iteration"] for r in evals], dtype=np.int64),
        np.array([r["test_error"] for r in evals], dtype=np.float64),
    )


def mean_curves(curves: Sequence[Curves]) -> Curves:
    """The point-wise mean of runs of one recipe (the seeds of a model).

    Runs of one recipe log at the same iterations; where one run has fewer points (it stopped
    early) the mean covers the common prefix.
    """
    if not curves:
        raise ValueError("mean_curves needs at least one run")
    n = min(len(c.train_iterations) for c in curves)
    m = min(len(c.eval_iterations) for c in curves)
    return Curves(
        curves[0].train_iterations[:n],
        np.mean([c.train_error[:n] for c in curves], axis=0),
        curves[0].eval_iterations[:m],
        np.mean([c.test_error[:m] for c in curves], axis=0),
        runs=len(curves),
    )
