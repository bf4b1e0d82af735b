"""``FolderLoader``: image folders through DataLoader workers, with the same protocol as
``DeviceLoader`` (deterministic epochs, resume at a batch, disjoint rank shards).

Each sample's random view is drawn from a seed that depends only on (seed, epoch, index), handed
to the worker with the index, so the batches do not depend on the number of workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from resnetlab.data.augment import Normalize
from resnetlab.data.folder import FolderDataset
from resnetlab.data.images import report_bad, warn_skipped
from resnetlab.data.sampling import (
    AUGMENT_STREAM,
    batch_slices,
    check_shard,
    epoch_indices,
    generator,
)
from resnetlab.data.transforms import (
    eval_view,
    resize_shorter,
    ten_crop,
    to_uint8_tensor,
    train_view,
)

Batch = tuple[torch.Tensor, torch.Tensor]


class FolderLoader:
    """Decode, augment (ImageNet recipe) and normalise folder images.

    Args:
        ds: the dataset.
        batch_size: samples per batch (fewer when a bad file is skipped).
        train: shuffle, random views, drop the last partial batch; else keep order and all.
        device: where batches are delivered and normalised.
        seed: seed of the order and the random views.
        rank, world_size: this process's shard of each epoch.
        workers: DataLoader worker processes (0 decodes in this process).
        channels_last: yield channels-last batches.
        augment: random views (default: ``train``).
        ten_crop: at evaluation, yield the paper's 10 crops per image as (B, 10, C, H, W).

    Attributes:
        skipped: "path: problem" of every bad file met so far.
    """

    def __init__(
        self,
        ds: FolderDataset,
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
        ten_crop: bool = False,
    ):
        check_shard(batch_size, rank, world_size)
        self.ds = ds
        self.info = ds.info
        self.batch_size = batch_size
        self.train = train
        self.augment = train if augment is None else augment
        self.device = torch.device(device)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.workers = workers
        self.channels_last = channels_last
        self.ten_crop = ten_crop and not self.augment
        self.normalize = Normalize(*ds.info.normalization(), self.device)
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self._batches(0))

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch`` for this rank.

        Yields:
            (images (B, C, H, W) float32 normalised — (B, 10, C, H, W) with ``ten_crop`` —,
            labels (B,) int64), on the device. A batch whose files all fail is left out.
        """
        batches = self._batches(epoch)[start:]
        view = _EpochView(self.ds, self.augment, self.ten_crop)
        loader = DataLoader(
            view,
            batch_sampler=batches,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        for images, labels, problems in loader:
            for problem in problems:
                report_bad(self.skipped, problem, strict=self.ds.strict)
            warn_skipped(problems)
            if not len(labels):
                continue
            images = self._normalize_batch(images.to(self.device, non_blocking=True))
            yield images, labels.to(self.device, non_blocking=True)

    def _normalize_batch(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, 10, C, H, W) uint8 -> float32 normalised, on the device."""
        if images.dim() == 5:
            b, k = images.shape[:2]
            return self.normalize(images.flatten(0, 1)).unflatten(0, (b, k))
        images = self.normalize(images)
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )

    def _batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """Each batch as (sample index, sample seed) pairs."""
        indices = epoch_indices(
            len(self.ds),
            shuffle=self.train,
            seed=self.seed,
            epoch=epoch,
            rank=self.rank,
            world_size=self.world_size,
        )
        seeds = torch.randint(
            0, 2**62, (len(self.ds),), generator=generator(self.seed, epoch, AUGMENT_STREAM)
        )
        pairs = list(zip(indices.tolist(), seeds[indices].tolist(), strict=True))
        return [pairs[s] for s in batch_slices(len(pairs), self.batch_size, drop_last=self.train)]


class _EpochView(Dataset):
    """Maps (index, seed) to one view of a sample; runs in the workers."""

    def __init__(self, ds: FolderDataset, train: bool, ten_crop_eval: bool):
        self.ds, self.train, self.ten_crop_eval = ds, train, ten_crop_eval

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor | None, int, str]:
        index, seed = item
        img, label, problem = self.ds.decode(index)
        if img is None:
            return None, label, problem
        recipe = self.ds.recipe
        if self.train:
            return to_uint8_tensor(train_view(img, recipe, random.Random(seed))), label, ""
        if self.ten_crop_eval:
            resized = to_uint8_tensor(resize_shorter(img, recipe.eval_resize))
            return ten_crop(resized, recipe.crop), label, ""  # (10, C, crop, crop)
        return to_uint8_tensor(eval_view(img, recipe)), label, ""


def _collate(items: list[tuple[torch.Tensor | None, int, str]]):
    good = [(img, label) for img, label, _ in items if img is not None]
    problems = [problem for img, _, problem in items if img is None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), problems
    images = torch.stack([img for img, _ in good])  # (B, C, H, W) or (B, 10, C, H, W)
    labels = torch.tensor([label for _, label in good], dtype=torch.int64)
    return images, labels, problems
