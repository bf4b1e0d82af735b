"""The embedded digits dataset: sizes, split, upsampling and statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from resnetlab.data import load_dataset
from resnetlab.data.stats import array_stats
from resnetlab.errors import ConfigError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


def test_split_sizes_are_stratified_and_disjoint():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 1, 32, 32) and train.images.dtype == torch.uint8
    assert train.info.classes == tuple("0123456789") and train.info.channels == 1
    counts = test.labels.bincount(minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class's ~180
    flat = {tuple(r.tolist()) for r in train.images.reshape(1437, -1)}
    assert not any(tuple(r.tolist()) in flat for r in test.images.reshape(360, -1)[:50])


def test_native_size_is_the_scaled_sklearn_pixels():
    ds = load_dataset("digits", "train", image_size=8)
    raw = sk_load_digits()
    expected = {tuple(np.round(img * 255 / 16).astype(np.uint8).ravel()) for img in raw.images}
    assert all(tuple(img.ravel().tolist()) in expected for img in ds.images[:20].numpy())


def test_upsampled_sizes_keep_the_digit_and_labels():
    small = load_dataset("digits", "test", image_size=16)
    big = load_dataset("digits", "test", image_size=32)
    assert small.images.shape == (360, 1, 16, 16) and small.info.image_size == (16, 16)
    assert torch.equal(small.labels, big.labels)
    # Downsampling the 32x32 version by 2x2 means lands close to the 16x16 version.
    pooled = torch.nn.functional.avg_pool2d(big.images.float(), 2)
    assert (pooled - small.images.float()).abs().mean() < 12


def test_statistics_are_those_of_the_train_split_and_cached(tmp_path):
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    mean = train.images.double().mean() / 255
    std = train.images.double().std(unbiased=False) / 255
    assert train.info.mean[0] == pytest.approx(mean.item(), abs=1e-9)
    assert train.info.std[0] == pytest.approx(std.item(), abs=1e-9)
    assert test.info == train.info
    assert array_stats(train.images) == (train.info.mean, train.info.std)
    assert (tmp_path / "cache" / "stats.json").is_file()


def test_too_small_size_is_a_config_error():
    with pytest.raises(ConfigError, match="image-size"):
        load_dataset("digits", image_size=4)
