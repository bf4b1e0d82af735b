"""SIGNS from HDF5 files written by the test in the course's layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from reliability_support import hang_guard
from resnetlab.cli import main
from resnetlab.data import load_dataset, make_loader
from resnetlab.data.files import md5_file
from resnetlab.errors import DataError, MissingSplitError


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


# ----------------------------------------------------------------------------------------------
# A folder holding only test_signs.h5: the test split is usable (a checkpoint has the statistics)
# ----------------------------------------------------------------------------------------------
SPECIAL_FILE_CASES = 2  # RELIABILITY.md row I15: a FIFO and /dev/zero as test_signs.h5
# Row I18: here load, data info, eval and the real course file; test_data_cifar.py,
# test_data_jpeg_cache.py and test_data_folder.py each load one test split without train files.
TEST_ONLY_CASES = 4 + 3


@pytest.fixture(scope="module")
def signs_run(tmp_path_factory) -> Path:
    """A ResNet-8 trained for 2 steps on a written SIGNS folder; returns its run folder."""
    from resnetlab.train import fit, load_config

    base = tmp_path_factory.mktemp("signs-run")
    _write(base / "train_signs.h5", "train", 12, seed=0)
    _write(base / "test_signs.h5", "test", 5, seed=1)
    cfg = load_config(
        sets=["model.name=cifar_resnet", "model.overrides={depth: 8}", "data.name=signs",
              f"data.root={base}", "batch_size=4", "device=cpu", "eval_train_at_end=false"],
        flags={"iterations": 2},
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESNETLAB_CACHE", str(base / "cache"))
        run = tmp_path_factory.mktemp("signs-out") / "run"  # outputs never go into the data
        fit(cfg, run)
    return run


@pytest.fixture
def test_only(signs_root) -> Path:
    (signs_root / "train_signs.h5").unlink()
    return signs_root


def test_the_test_split_loads_without_the_train_file(test_only):
    test = load_dataset("signs", "test", root=test_only)
    assert len(test) == 5 and test.info.classes == tuple("012345")
    assert test.info.mean is None and test.info.std is None
    with pytest.raises(MissingSplitError, match=r"train_signs\.h5: file not found"):
        load_dataset("signs", "train", root=test_only)
    with pytest.raises(DataError, match=r"^signs: the train split is absent, so there is no"):
        make_loader(test, 2, train=False)


def test_data_info_shows_the_test_split_and_says_the_train_file_is_absent(test_only, capsys):
    argv = ["data", "info", "--data", "signs", "--data-dir", str(test_only)]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"train      absent ({test_only / 'train_signs.h5'}: file not found)" in out
    assert any(line.startswith("test       5 images, ") for line in out)
    assert "mean, std  unknown: the train split is absent (a checkpoint carries its own)" in out
    assert main([*argv, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["counts"] == {"test": 5} and record["mean"] is None and record["std"] is None
    assert record["absent"] == {"train": f"{test_only / 'train_signs.h5'}: file not found"}


def test_eval_needs_no_train_file(signs_run, test_only, tmp_path, capsys):
    argv = ["eval", str(signs_run), "--data-dir", str(test_only), "--json", "--out"]
    assert main([*argv, str(tmp_path / "eval")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["samples"] == 5 and record["data"] == "signs" and record["split"] == "test"
    assert main([*argv, str(tmp_path / "eval-train"), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "train_signs.h5: file not found" in err


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


@pytest.mark.realdata
def test_the_real_course_test_file(signs_test_only, signs_run, tmp_path, capsys):
    assert md5_file(signs_test_only / "test_signs.h5") == "2338a58ca0b878df76f995d418d03a9e"
    test = load_dataset("signs", "test", root=signs_test_only)
    assert test.images.shape == (120, 3, 64, 64) and test.info.classes == tuple("012345")
    assert test.labels.bincount().tolist() == [20] * 6
    assert main(["data", "info", "--data", "signs", "--data-dir", str(signs_test_only)]) == 0
    out = capsys.readouterr().out
    assert "train      absent (" in out and "test       120 images, 20..20 per class" in out
    argv = ["eval", str(signs_run), "--data-dir", str(signs_test_only), "--json"]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 120
