"""Per-channel mean and standard deviation, exact, cached by dataset fingerprint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import torch

from resnetlab.atomic import atomic_write
from resnetlab.data.files import cache_dir

STATS_FILE = "stats.json"


def channel_histograms(batches: Iterable[torch.Tensor], channels: int) -> torch.Tensor:
    """Counts of each pixel value 0..255 per channel over uint8 batches.

    Histograms make the statistics exact (integer counts) and need no float copy of the data.

    Args:
        batches: uint8 tensors (B, C, H, W) with ``C == channels``.
        channels: the number of channels.

    Returns:
        (channels, 256) int64 counts.
    """
    hist = torch.zeros(channels, 256, dtype=torch.int64)
    for batch in batches:
        for c in range(channels):
            hist[c] += torch.bincount(batch[:, c].reshape(-1).cpu(), minlength=256)
    return hist


def stats_from_histograms(hist: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and (population) standard deviation per channel, in [0, 1] units."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    counts = hist.to(torch.float64)
    n = counts.sum(dim=1)
    mean = (counts * values).sum(dim=1) / n
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(dim=1) / n
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def array_stats(
    images: torch.Tensor, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of (N, C, H, W) uint8 images, in [0, 1] units."""
    batches = (images[i : i + chunk] for i in range(0, images.shape[0], chunk))
    return stats_from_histograms(channel_histograms(batches, images.shape[1]))


def cached_stats(
    key: str, compute: Callable[[], tuple[tuple[float, ...], tuple[float, ...]]]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std stored under ``key`` in the cache, computed and stored on a miss.

    Args:
        key: names the dataset and its fingerprint, e.g. ``"cifar10:1f3a..."``.
        compute: returns (mean, std) from the train split.
    """
    path = cache_dir() / STATS_FILE
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or damaged cache: recompute, then rewrite it
        table = {}
    entry = table.get(key) if isinstance(table, dict) else None
    if isinstance(entry, dict) and {"mean", "std"} <= entry.keys():
        return tuple(entry["mean"]), tuple(entry["std"])
    mean, std = compute()
    table = table if isinstance(table, dict) else {}
    table[key] = {"mean": list(mean), "std": list(std)}
    text = json.dumps(table, indent=1, sort_keys=True).encode()
    atomic_write(path, lambda f: f.write(text))
    return mean, std
