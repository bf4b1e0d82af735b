"""Loaders: batches of normalised images on the training device, deterministic per epoch.

``make_loader`` picks the pipeline: an ``ArrayDataset`` lives on the device as one uint8 tensor
and is augmented there a batch at a time (``DeviceLoader``); a ``FolderDataset`` is decoded by
DataLoader workers with the ImageNet recipe (``FolderLoader``). Both follow the same protocol:
``len(loader)`` batches per epoch for this rank, and ``loader.epoch(e, start=k)`` yields the
batches k, k+1, ... of epoch e, exactly as ``loader.epoch(e)`` would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from resnetlab.data.array import ArrayDataset
from resnetlab.data.augment import Normalize, crop_flip, draw_crop_flip, resize
from resnetlab.data.folder import FolderDataset
from resnetlab.data.folder_loader import FolderLoader
from resnetlab.data.info import DatasetInfo
from resnetlab.data.sampling import batch_slices, check_shard, epoch_indices
from resnetlab.errors import ConfigError

CIFAR_PAD = 4  # §4.2: "4 pixels are padded on each side"

Batch = tuple[torch.Tensor, torch.Tensor]


class Loader(Protocol):
    """What the training loop needs from a loader."""

    info: DatasetInfo
    batch_size: int

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...


class DeviceLoader:
    """A small dataset held on the device as uint8, augmented and normalised per batch there.

    Args:
        ds: the dataset.
        batch_size: samples per batch.
        train: shuffle each epoch and drop the last partial batch; else keep order and all.
        device: where the data lives and the batches are made.
        seed: the seed of the order and the augmentation.
        rank, world_size: this process's shard of each epoch.
        channels_last: yield batches in channels-last memory format.
        augment: pad-crop-flip (default: ``train``).
        pad: padding of the random crop (4 in the paper).

    ``sizes`` (progressive resizing) lists ``(first_epoch, side)`` pairs in order: from that epoch
    on, batches are resized to ``side`` (the height; the width keeps the aspect) on the device,
    after the crop and flip; empty = the data's own size.
    """

    def __init__(
        self,
        ds: ArrayDataset,
        batch_size: int,
        *,
        train: bool,
        device: str | torch.device = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        augment: bool | None = None,
        pad: int = CIFAR_PAD,
    ):
        check_shard(batch_size, rank, world_size)
        self.info = ds.info
        self.batch_size = batch_size
        self.train = train
        self.augment = train if augment is None else augment
        self.device = torch.device(device)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        self.pad = pad
        self.images = ds.images.to(self.device)  # (N, C, H, W) uint8, resident for the run
        self.labels = ds.labels.to(self.device)  # (N,)
        self.normalize = Normalize(*ds.info.normalization(), self.device)
        self.sizes: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._slices(self._indices(0)))

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch`` for this rank.

        Yields:
            (images (B, C, H, W) float32 normalised, labels (B,) int64), both on the device.
        """
        indices = self._indices(epoch)
        slices = self._slices(indices)[start:]
        indices = indices.to(self.device)  # one transfer per epoch, then slices of it
        side = self.side_at(epoch)
        if self.augment:
            p = draw_crop_flip(len(self.labels), pad=self.pad, seed=self.seed, epoch=epoch)
            dy, dx, flip = (t.to(self.device) for t in (p.dy, p.dx, p.flip))
        for part in slices:
            idx = indices[part]  # (B,)
            images = self.images[idx]  # (B, C, H, W) uint8
            if self.augment:
                images = crop_flip(images, dy[idx], dx[idx], flip[idx], self.pad)
            images = self.normalize(images)
            if side is not None:
                images = resize(images, side)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[idx]

    def side_at(self, epoch: int) -> int | None:
        """The image height of ``epoch``'s batches where ``sizes`` changes it, else None."""
        side = next((s for first, s in reversed(self.sizes) if first <= epoch), None)
        return None if side in (None, self.images.shape[-2]) else side

    def _indices(self, epoch: int) -> torch.Tensor:
        n = self.labels.shape[0]
        return epoch_indices(
            n,
            shuffle=self.train,
            seed=self.seed,
            epoch=epoch,
            rank=self.rank,
            world_size=self.world_size,
        )

    def _slices(self, indices: torch.Tensor) -> list[slice]:
        return batch_slices(len(indices), self.batch_size, drop_last=self.train)


def make_loader(
    ds,
    batch_size: int,
    *,
    train: bool,
    device: str | torch.device = "cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 2,
    channels_last: bool = False,
    augment: bool | None = None,
) -> Loader:
    """The right loader for ``ds``: ``DeviceLoader`` for arrays, ``FolderLoader`` for folders.

    Args:
        ds: an ``ArrayDataset`` or a ``FolderDataset``.
        batch_size: samples per batch.
        train: shuffle and drop the last partial batch; ``False`` keeps order and every sample.
        device: where batches are delivered.
        seed: seed of the order and the augmentation.
        rank, world_size: this process's disjoint shard of every epoch.
        workers: DataLoader worker processes (folders only).
        channels_last: yield channels-last batches.
        augment: random crop and flip; defaults to ``train``.
    """
    common = {
        "train": train,
        "device": device,
        "seed": seed,
        "rank": rank,
        "world_size": world_size,
        "channels_last": channels_last,
        "augment": augment,
    }
    if isinstance(ds, ArrayDataset):
        return DeviceLoader(ds, batch_size, **common)
    if isinstance(ds, FolderDataset):
        return FolderLoader(ds, batch_size, workers=workers, **common)
    raise ConfigError(
        f"make_loader needs an ArrayDataset or a FolderDataset; got {type(ds).__name__}"
    )
