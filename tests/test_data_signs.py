"""SIGNS from HDF5 files written by the test in the course's layout."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from reliability_support import hang_guard
from resnetlab.data import load_dataset
from resnetlab.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


def _write(path, split, n, seed, **override):
    rng = np.random.default_rng(seed)
    arrays = {
        f"{split}_set_x": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
        f"{split}_set_y": rng.integers(0, 6, n).astype(np.int64),
        "list_classes": np.arange(6, dtype=np.int64),
    }
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value is not None:
                f.create_dataset(key, data=value)
    return arrays


@pytest.fixture
def signs_root(tmp_path):
    root = tmp_path / "signs"
    root.mkdir()
    _write(root / "train_signs.h5", "train", 12, seed=0)
    _write(root / "test_signs.h5", "test", 5, seed=1)
    return root


def test_images_labels_and_classes(signs_root):
    train = load_dataset("signs", "train", root=signs_root)
    test = load_dataset("signs", "test", root=signs_root)
    written = _write(signs_root / "check.h5", "train", 12, seed=0)
    assert train.images.shape == (12, 3, 64, 64) and len(test) == 5
    np.testing.assert_array_equal(
        train.images.numpy(), written["train_set_x"].transpose(0, 3, 1, 2)
    )
    assert train.labels.tolist() == written["train_set_y"].tolist()
    assert train.info.classes == ("0", "1", "2", "3", "4", "5") and train.info.image_size == (
        64,
        64,
    )
    pixels = train.images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert np.allclose(train.info.std, pixels.std(1, unbiased=False).numpy(), atol=1e-12)
    assert test.info == train.info


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"test_set_x": None}, r"missing key 'test_set_x'"),
        ({"list_classes": None}, r"missing key 'list_classes'"),
        ({"test_set_x": np.zeros((5, 64, 64), np.uint8)}, r"'test_set_x' must be \(N, H, W, 3\)"),
        ({"test_set_x": np.zeros((5, 64, 64, 3), np.float32)}, r"'test_set_x' must be .* uint8"),
        ({"test_set_y": np.zeros(4, np.int64)}, r"'test_set_y' must be \(5,\) integers"),
        ({"test_set_y": np.array([0, 1, 2, 3, 6])}, r"'test_set_y' label 6 is out of range 0\.\.5"),
    ],
)
def test_bad_files_name_the_file_and_the_key(signs_root, override, message):
    _write(signs_root / "test_signs.h5", "test", 5, seed=1, **override)
    with pytest.raises(DataError, match=r"test_signs\.h5: " + message):
        load_dataset("signs", "test", root=signs_root)


def test_missing_and_non_hdf5_files(signs_root):
    (signs_root / "test_signs.h5").unlink()
    with pytest.raises(DataError, match=r"test_signs\.h5: file not found"):
        load_dataset("signs", "test", root=signs_root)
    (signs_root / "test_signs.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"test_signs\.h5: not a readable HDF5 file"):
        load_dataset("signs", "test", root=signs_root)


def test_a_fifo_or_a_device_in_place_of_the_file_is_not_read(signs_root):
    (signs_root / "test_signs.h5").unlink()
    os.mkfifo(signs_root / "test_signs.h5")
    with (
        hang_guard(5),
        pytest.raises(DataError, match=r"test_signs\.h5: not a regular file \(a FIFO"),
    ):
        load_dataset("signs", "test", root=signs_root)
    (signs_root / "test_signs.h5").unlink()
    (signs_root / "test_signs.h5").symlink_to("/dev/zero")
    with hang_guard(5), pytest.raises(DataError, match=r"not a regular file \(a character device"):
        load_dataset("signs", "test", root=signs_root)
