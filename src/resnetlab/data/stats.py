"""Per-channel mean and standard deviation, exact, cached by dataset fingerprint."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

import torch

from resnetlab.atomic import atomic_write
from resnetlab.data.files import cache_dir
from resnetlab.errors import DataError

STATS_FILE = "stats.json"
CHANNEL_NAMES = {1: ("gray",), 3: ("red", "green", "blue")}


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
    """Mean and (population) standard deviation per channel, in [0, 1] units.

    The moments are summed in Python integers and divided once, so a channel whose pixels all
    have one value has a std of exactly 0; a channel without pixels gets NaNs.
    """
    means, stds = [], []
    for counts in hist.tolist():
        n = sum(counts)
        s1 = sum(v * c for v, c in enumerate(counts))
        s2 = sum(v * v * c for v, c in enumerate(counts))
        if n == 0:
            means.append(math.nan)
            stds.append(math.nan)
            continue
        means.append(s1 / (255 * n))
        stds.append(math.sqrt((n * s2 - s1 * s1) / (255 * n) ** 2))
    return tuple(means), tuple(stds)


def array_stats(
    images: torch.Tensor, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of (N, C, H, W) uint8 images, in [0, 1] units."""
    batches = (images[i : i + chunk] for i in range(0, images.shape[0], chunk))
    return stats_from_histograms(channel_histograms(batches, images.shape[1]))


def cached_stats(
    key: str, compute: Callable[[], tuple[tuple[float, ...], tuple[float, ...]]], source: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std stored under ``key`` in the cache, computed and stored on a miss.

    Args:
        key: names the dataset and its fingerprint, e.g. ``"cifar10:1f3a..."``.
        compute: returns (mean, std) from the train split.
        source: the train split's file or folder, named when its statistics are unusable.

    Raises:
        DataError: a channel whose std is 0 (or a statistic that is not finite), checked on
            cached values too: normalising by it would divide by zero.
    """
    path = cache_dir() / STATS_FILE
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or damaged cache: recompute, then rewrite it
        table = {}
    entry = table.get(key) if isinstance(table, dict) else None
    if isinstance(entry, dict) and {"mean", "std"} <= entry.keys():
        return check_stats(source, tuple(entry["mean"]), tuple(entry["std"]))
    mean, std = check_stats(source, *compute())
    table = table if isinstance(table, dict) else {}
    table[key] = {"mean": list(mean), "std": list(std)}
    text = json.dumps(table, indent=1, sort_keys=True).encode()
    atomic_write(path, lambda f: f.write(text))
    return mean, std


def check_stats(
    source: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` when every channel has a finite mean and a positive, finite std.

    Raises:
        DataError: naming ``source`` and each channel whose std is 0 (all of its pixels have one
            value, as in a dataset of identical images) or whose statistics are not finite (no
            pixels at all).
    """
    if not all(math.isfinite(v) for v in (*mean, *std)):
        raise DataError(f"{source}: no pixels to compute the channel mean and std from")
    names = CHANNEL_NAMES.get(len(std), tuple(str(c) for c in range(len(std))))
    flat = [c for c, s in enumerate(std) if s <= 0]
    if flat:
        which = ", ".join(
            f"{c} ({names[c]}: every pixel is {round(mean[c] * 255)}/255)" for c in flat
        )
        verb = "has" if len(flat) == 1 else "have"
        raise DataError(
            f"{source}: channel{'s' * (len(flat) > 1)} {which} {verb} std 0 over the train "
            "images, so they cannot be normalised ((x - mean) / std); are all the images the same?"
        )
    return mean, std
