"""Strict, reproducible test settings shared by every test module.

Fixed seeds and deterministic algorithms for every test; one intra-op thread per worker so that
parallel test workers (``pytest -n 2``) do not oversubscribe the cores. Markers: ``slow``, ``gpu``
(skips without CUDA) and ``realdata`` (skips without the real datasets).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Every test runs with deterministic algorithms (below); on a GPU cuBLAS is deterministic only
# with a fixed workspace, which must be set before its first handle is made.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def real_data_root() -> Path:
    """Where the real datasets live: $RESNETLAB_DATA, else ../shared/data beside the checkout."""
    return Path(os.environ.get("RESNETLAB_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _deterministic():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=False)
    yield
    torch.use_deterministic_algorithms(False)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)


@pytest.fixture
def signs_test_only() -> Path:
    """The folder of the course's real ``test_signs.h5`` (``realdata``; no train file beside it,
    see ``../shared/data/README.md``); skips with a reason when absent."""
    root = real_data_root() / "signs"
    if not (root / "test_signs.h5").is_file():
        pytest.skip(f"real data not found at {root / 'test_signs.h5'} (set RESNETLAB_DATA)")
    return root


@pytest.fixture
def cifar10_jpeg() -> Path:
    """The JPEG copy of CIFAR-10 (``realdata``); skips with a reason when absent."""
    root = real_data_root() / "cifar10-jpeg"
    if not (root / "train").is_dir():
        pytest.skip(f"real data not found at {root} (set RESNETLAB_DATA)")
    return root
