"""DeviceLoader: the paper's augmentation, normalisation, determinism, resume and sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resnetlab.data import ArrayDataset, DatasetInfo, DeviceLoader, make_loader, train_val_split
from resnetlab.data.augment import crop_flip, draw_crop_flip
from resnetlab.data.sampling import epoch_indices
from resnetlab.errors import ConfigError

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _dataset(n: int = 50, size: int = 8) -> ArrayDataset:
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.arange(n) % 10
    info = DatasetInfo("toy", tuple(str(i) for i in range(10)), (size, size), 3, MEAN, STD)
    return ArrayDataset(images, labels, info)


def _batches(loader, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch, start)]


def _reference_crop(image: np.ndarray, dy: int, dx: int, flip: bool, pad: int) -> np.ndarray:
    """Zero-pad, slice and mirror one (C, H, W) image, written out plainly with numpy."""
    c, h, w = image.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=image.dtype)
    padded[:, pad : pad + h, pad : pad + w] = image
    crop = padded[:, dy : dy + h, dx : dx + w]
    return crop[:, :, ::-1] if flip else crop


def _reference_normalize(image: np.ndarray) -> np.ndarray:
    mean = np.array(MEAN)[:, None, None]
    std = np.array(STD)[:, None, None]
    return (image / 255.0 - mean) / std


def test_crop_flip_equals_per_sample_reference():
    ds = _dataset(n=12)
    p = draw_crop_flip(12, pad=4, seed=3, epoch=2)
    out = crop_flip(ds.images, p.dy, p.dx, p.flip, pad=4)
    assert p.flip.any() and not p.flip.all()  # both branches are exercised
    for i in range(12):
        ref = _reference_crop(ds.images[i].numpy(), int(p.dy[i]), int(p.dx[i]), bool(p.flip[i]), 4)
        np.testing.assert_array_equal(out[i].numpy(), ref)


def test_extreme_offsets_show_the_zero_padding():
    image = torch.full((1, 1, 4, 4), 200, dtype=torch.uint8)
    zero = torch.zeros(1, dtype=torch.int64)
    out = crop_flip(image, zero, zero, torch.zeros(1, dtype=torch.bool), pad=2)
    expected = torch.zeros(4, 4, dtype=torch.uint8)
    expected[2:, 2:] = 200
    assert torch.equal(out[0, 0], expected)
    flipped = crop_flip(image, zero, zero, torch.ones(1, dtype=torch.bool), pad=2)
    assert torch.equal(flipped[0, 0], expected.flip(1))


def test_loader_batches_equal_reference_augmentation_and_normalisation():
    ds = _dataset()
    loader = DeviceLoader(ds, 16, train=True, seed=7)
    order = epoch_indices(len(ds), shuffle=True, seed=7, epoch=1)
    p = draw_crop_flip(len(ds), pad=4, seed=7, epoch=1)
    x, y = next(loader.epoch(1))
    for j in range(0, 16, 5):
        i = int(order[j])
        assert y[j] == ds.labels[i]
        ref = _reference_crop(ds.images[i].numpy(), int(p.dy[i]), int(p.dx[i]), bool(p.flip[i]), 4)
        np.testing.assert_allclose(x[j].numpy(), _reference_normalize(ref), rtol=0, atol=1e-5)


def test_eval_loader_keeps_order_and_every_sample_unaugmented():
    ds = _dataset(n=50)
    loader = make_loader(ds, 16, train=False)
    batches = _batches(loader, 0)
    assert len(loader) == len(batches) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    images = torch.cat([x for x, _ in batches])
    assert torch.equal(torch.cat([y for _, y in batches]), ds.labels)
    ref = _reference_normalize(ds.images.numpy())
    np.testing.assert_allclose(images.numpy(), ref, rtol=0, atol=1e-5)


def test_train_loader_drops_the_last_partial_batch_and_shuffles_per_epoch():
    ds = _dataset(n=50)
    loader = make_loader(ds, 16, train=True, seed=0)
    assert len(loader) == 3
    e0 = torch.cat([y for _, y in _batches(loader, 0)])
    e1 = torch.cat([y for _, y in _batches(loader, 1)])
    assert len(e0) == 48 and not torch.equal(e0, e1)


def test_same_seed_same_batches_other_seed_other_batches():
    ds = _dataset()
    a = _batches(DeviceLoader(ds, 10, train=True, seed=5), 3)
    b = _batches(DeviceLoader(ds, 10, train=True, seed=5), 3)
    c = _batches(DeviceLoader(ds, 10, train=True, seed=6), 3)
    assert all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )
    assert not torch.equal(a[0][0], c[0][0])


@pytest.mark.parametrize("start", [0, 1, 3])
def test_resume_mid_epoch_yields_the_remaining_batches_exactly(start):
    loader = DeviceLoader(_dataset(), 10, train=True, seed=2)
    full = _batches(loader, 4)
    resumed = _batches(loader, 4, start=start)
    assert len(resumed) == len(full) - start
    for (x1, y1), (x2, y2) in zip(full[start:], resumed, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_augmentation_of_a_sample_does_not_depend_on_batch_size():
    ds = _dataset(n=48)
    small = _batches(DeviceLoader(ds, 4, train=True, seed=9), 2)
    large = _batches(DeviceLoader(ds, 16, train=True, seed=9), 2)
    xs, ys = torch.cat([x for x, _ in small]), torch.cat([y for _, y in small])
    xl, yl = torch.cat([x for x, _ in large]), torch.cat([y for _, y in large])
    assert torch.equal(ys, yl) and torch.equal(xs, xl)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_get_disjoint_equal_shards_covering_the_epoch(world_size):
    n = 50
    shards = [
        epoch_indices(n, shuffle=True, seed=1, epoch=2, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    sizes = {len(s) for s in shards}
    assert sizes == {n // world_size}
    union = torch.cat(shards)
    assert len(set(union.tolist())) == len(union) == (n // world_size) * world_size
    full = epoch_indices(n, shuffle=True, seed=1, epoch=2)
    assert set(union.tolist()) == set(full[: len(union)].tolist())
    loaders = [
        DeviceLoader(_dataset(n), 4, train=True, seed=1, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    assert len({len(ld) for ld in loaders}) == 1


def test_a_rank_sees_the_same_augmentation_as_a_single_process():
    ds = _dataset(n=40)
    single = DeviceLoader(ds, 40, train=True, seed=4)
    x_all, _ = next(single.epoch(0))
    order = epoch_indices(40, shuffle=True, seed=4, epoch=0)
    rank1 = DeviceLoader(ds, 20, train=True, seed=4, rank=1, world_size=2)
    x1, _ = next(rank1.epoch(0))
    # Rank 1 takes every second sample of the epoch's permutation.
    pos = {int(i): j for j, i in enumerate(order)}
    shard = epoch_indices(40, shuffle=True, seed=4, epoch=0, rank=1, world_size=2)
    for j, i in enumerate(shard.tolist()):
        assert torch.equal(x1[j], x_all[pos[i]])


def test_channels_last_and_bad_arguments():
    ds = _dataset()
    x, _ = next(make_loader(ds, 8, train=False, channels_last=True).epoch(0))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="rank"):
        make_loader(ds, 8, train=True, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(ds, 0, train=True)
    with pytest.raises(ConfigError, match="ArrayDataset or a FolderDataset"):
        make_loader([1, 2], 8, train=True)


def test_train_val_split_is_disjoint_seeded_and_sized():
    ds = _dataset(n=50)
    train, val = train_val_split(ds, 0.1, seed=0)
    assert (len(train), len(val)) == (45, 5)
    seen = torch.cat([train.images.reshape(len(train), -1), val.images.reshape(len(val), -1)])
    assert len({tuple(r.tolist()) for r in seen}) == 50
    again = train_val_split(ds, 0.1, seed=0)[1]
    other = train_val_split(ds, 0.1, seed=1)[1]
    assert torch.equal(again.labels, val.labels) and torch.equal(again.images, val.images)
    assert not torch.equal(other.images, val.images)
    with pytest.raises(ConfigError, match="val_fraction"):
        train_val_split(ds, 1.0, seed=0)
