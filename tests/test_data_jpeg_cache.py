"""Same-size image folders (the JPEG copy of CIFAR-10) decoded once into a cached array."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.data import ArrayDataset, jpeg_cache, load_dataset
from resnetlab.errors import DataError, MissingSplitError

CLASSES = ("airplane", "bird", "cat")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


def _write_split(root, per_class: int, seed: int, fmt: str = "png") -> dict:
    written = {}
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            path = root / name / f"{k:04d}.{fmt}"
            Image.fromarray(pixels).save(path)
            written[str(path)] = (pixels, label)
    return written


@pytest.fixture
def jpeg_root(tmp_path):
    root = tmp_path / "cifar10-jpeg"
    _write_split(root / "train", 4, seed=0)
    _write_split(root / "test", 2, seed=1)
    return root


def test_decoded_arrays_equal_the_files_and_stats_come_from_train(jpeg_root):
    train = load_dataset("cifar10-jpeg", "train", root=jpeg_root)
    test = load_dataset("cifar10-jpeg", "test", root=jpeg_root)
    assert isinstance(train, ArrayDataset) and (len(train), len(test)) == (12, 6)
    assert train.info.classes == CLASSES and train.info.image_size == (8, 8)
    files = sorted((jpeg_root / "train").glob("*/*.png"))
    for i, path in enumerate(files):
        expected = np.asarray(Image.open(path)).transpose(2, 0, 1)
        np.testing.assert_array_equal(train.images[i].numpy(), expected)
        assert train.labels[i] == CLASSES.index(path.parent.name)
    pixels = train.images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert np.allclose(train.info.mean, pixels.mean(1).numpy(), atol=1e-12)
    assert np.allclose(train.info.std, pixels.std(1, unbiased=False).numpy(), atol=1e-12)
    assert test.info == train.info


def test_second_load_reads_the_cache_and_a_touched_file_invalidates_it(jpeg_root, monkeypatch):
    first = load_dataset("cifar10-jpeg", "train", root=jpeg_root)
    calls = []
    real = jpeg_cache._decode_all
    monkeypatch.setattr(jpeg_cache, "_decode_all", lambda *a: calls.append(1) or real(*a))
    again = load_dataset("cifar10-jpeg", "train", root=jpeg_root)
    assert calls == [] and torch.equal(first.images, again.images)
    path = next((jpeg_root / "train" / "cat").iterdir())
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    changed = load_dataset("cifar10-jpeg", "train", root=jpeg_root)
    assert calls == [1] and not torch.equal(first.images, changed.images)


def test_images_of_another_size_are_refused_by_name(jpeg_root):
    odd = jpeg_root / "train" / "bird" / "odd.png"
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(odd)
    with pytest.raises(DataError, match=r"odd\.png: image is 8x9, but .* is 8x8"):
        load_dataset("cifar10-jpeg", "train", root=jpeg_root)


def test_bad_file_is_skipped_with_a_warning_or_fatal_when_strict(jpeg_root):
    (jpeg_root / "test" / "cat" / "9999.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"9999\.jpg: cannot decode image"):
        load_dataset("cifar10-jpeg", "test", root=jpeg_root, strict=True)
    with pytest.warns(UserWarning, match=r"9999\.jpg: cannot decode image"):
        test = load_dataset("cifar10-jpeg", "test", root=jpeg_root)
    assert len(test) == 6


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: folder not found"):
        load_dataset("cifar10-jpeg", "train", root=tmp_path / "nowhere")


@pytest.mark.realdata
@pytest.mark.slow
def test_real_jpeg_copy_of_cifar10(cifar10_jpeg):
    test = load_dataset("cifar10-jpeg", "test", root=cifar10_jpeg)
    train = load_dataset("cifar10-jpeg", "train", root=cifar10_jpeg)
    assert (len(train), len(test)) == (50000, 10000)
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert (
        train.info.classes[:3] == ("airplane", "automobile", "bird")
        and train.info.num_classes == 10
    )
    assert train.labels.bincount().tolist() == [5000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    # CIFAR-10's well-known channel means (about 0.49, 0.48, 0.45); JPEG changes them slightly.
    assert np.allclose(train.info.mean, (0.491, 0.482, 0.447), atol=0.01)


def test_the_test_split_loads_without_train(jpeg_root):
    shutil.rmtree(jpeg_root / "train")
    test = load_dataset("cifar10-jpeg", "test", root=jpeg_root)
    assert len(test) == 6 and test.info.classes == CLASSES and test.info.mean is None
    with pytest.raises(MissingSplitError, match=r"cifar10-jpeg/train: folder not found"):
        load_dataset("cifar10-jpeg", "train", root=jpeg_root)
