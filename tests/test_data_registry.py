"""The dataset registry, default folders, the shared CLI options and the statistics cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import cifar_batch, py2_pickle, write_cifar10
from resnetlab.cli import main
from resnetlab.cli.options import add_data_arguments, data_kwargs
from resnetlab.data import list_datasets, load_dataset
from resnetlab.data.registry import resolve_root
from resnetlab.data.stats import cached_stats, channel_histograms, stats_from_histograms
from resnetlab.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


def test_every_issue_dataset_is_registered():
    names = list_datasets()
    assert names == sorted(names)
    assert {"digits", "cifar10", "cifar100", "cifar10-jpeg", "signs", "folder"} <= set(names)


def test_unknown_name_and_split_are_config_errors():
    with pytest.raises(ConfigError, match="--data must be one of"):
        load_dataset("mnist")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", "val")


def test_default_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_DATA", str(tmp_path))
    assert resolve_root("cifar10", None) == tmp_path / "cifar10"
    assert resolve_root("cifar10", "/x/y") == resolve_root("signs", "/x/y")
    assert resolve_root("digits", None) is None
    monkeypatch.delenv("RESNETLAB_DATA")
    assert str(resolve_root("signs", None)) == "data/signs"
    with pytest.raises(ConfigError, match="--data-dir"):
        resolve_root("folder", None)


def test_cli_arguments_round_trip():
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    args = parser.parse_args([])
    assert args.data == "digits" and args.verify and not args.download and not args.strict
    args = parser.parse_args(
        ["--data", "cifar10", "--data-dir", "p", "--no-verify", "--strict", "--download"]
    )
    assert args.data == "cifar10"
    assert data_kwargs(args) == {"root": "p", "download": True, "verify": False, "strict": True}


def test_stats_cache_computes_once_and_survives_a_damaged_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return (0.25,), (0.5,)

    assert cached_stats("toy:abc", compute, "toy") == ((0.25,), (0.5,))
    assert cached_stats("toy:abc", compute, "toy") == ((0.25,), (0.5,))
    assert len(calls) == 1
    path = tmp_path / "cache" / "stats.json"
    assert json.loads(path.read_text())["toy:abc"] == {"mean": [0.25], "std": [0.5]}
    path.write_text("{not json")
    assert cached_stats("toy:abc", compute, "toy") == ((0.25,), (0.5,))
    assert len(calls) == 2


# ----------------------------------------------------------------------------------------------
# A channel whose std is 0 is refused when the dataset loads, naming the channel and the data
# ----------------------------------------------------------------------------------------------
def _constant_images(n: int, color, size: int = 8) -> np.ndarray:
    """(n, size, size, 3) uint8 images, all the same colour."""
    return np.broadcast_to(np.array(color, np.uint8), (n, size, size, 3)).copy()


def _write_constant(kind: str, root: Path, color) -> Path:
    """A dataset of ``kind`` whose train images are all ``color``; returns its --data-dir."""
    if kind == "cifar10":
        folder = write_cifar10(root)
        for name in [f"data_batch_{i}" for i in range(1, 6)]:
            batch = cifar_batch(4, 1)
            images = _constant_images(4, color, size=32)
            batch[b"data"] = images.transpose(0, 3, 1, 2).reshape(4, 3072)  # rows R, G, B
            (folder / name).write_bytes(py2_pickle(batch))
        return root
    if kind == "signs":
        root.mkdir()
        with h5py.File(root / "train_signs.h5", "w") as f:
            f["train_set_x"], f["train_set_y"] = _constant_images(4, color), np.arange(4) % 2
            f["list_classes"] = np.arange(2)
        return root
    split_root = root / "train" if kind == "cifar10-jpeg" else root
    for cls in ("a", "b"):
        (split_root / cls).mkdir(parents=True)
        for k, pixels in enumerate(_constant_images(2, color)):
            Image.fromarray(pixels).save(split_root / cls / f"{k}.png")
    return root


CONSTANT_DATA = {"cifar10": "cifar-10-batches-py", "signs": "train_signs.h5", "folder": "data",
                 "cifar10-jpeg": "data/train"}  # fmt: skip
# RELIABILITY.md row I16: each dataset, + one flat channel, a cached flat entry, `resnetlab train`
STD_CASES = len(CONSTANT_DATA) + 3


@pytest.mark.parametrize("kind", sorted(CONSTANT_DATA))
def test_a_channel_with_std_0_is_named_at_load(tmp_path, kind):
    root = _write_constant(kind, tmp_path / "data", (128, 128, 128))
    message = (
        rf"{CONSTANT_DATA[kind]}( \(train split\))?: channels 0 \(red: every pixel is "
        r"128/255\), 1 \(green: every pixel is 128/255\), 2 \(blue: every pixel is 128/255\) "
        r"have std 0 over the train images, so they cannot be normalised"
    )
    with pytest.raises(DataError, match=message):
        load_dataset(kind, "train", root=root, verify=False, test_fraction=0)


def test_one_flat_channel_is_enough_and_a_cached_value_is_checked_too(tmp_path):
    root = tmp_path / "data"
    for cls, color in (("a", (0, 10, 255)), ("b", (200, 90, 255))):  # blue is always 255
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), color).save(root / cls / "x.png")
    with pytest.raises(DataError, match=r"channel 2 \(blue: every pixel is 255/255\) has std 0"):
        load_dataset("folder", root=root, test_fraction=0)
    hist = channel_histograms([torch.full((3, 1, 4, 4), 77, dtype=torch.uint8)], 1)
    assert stats_from_histograms(hist) == ((77 / 255,), (0.0,))  # exactly 0, not 1e-17
    (tmp_path / "cache").mkdir(exist_ok=True)  # an entry written before the check existed
    (tmp_path / "cache" / "stats.json").write_text('{"toy:x": {"mean": [0.5], "std": [0.0]}}')
    with pytest.raises(DataError, match=r"^toy: channel 0 \(gray: every pixel is 128/255\)"):
        cached_stats("toy:x", lambda: pytest.fail("the cached entry was not used"), "toy")


def test_training_on_identical_images_is_one_line_about_the_channel(tmp_path, capsys):
    root = _write_constant("folder", tmp_path / "data", (7, 7, 7))
    argv = ["train", "--model", "cifar_resnet", "--set", "model.overrides.depth=8",
            "--data", "folder", "--data-dir", str(root), "--image-size", "8",
            "--iterations", "1", "--batch-size", "2", "--set", "data.workers=0",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"resnetlab: error: {root} (train split): channels 0 (red: every pixel")
    assert "have std 0 over the train images" in err and "diverged" not in err
