"""The dataset registry, default folders, the shared CLI options and the statistics cache."""

from __future__ import annotations

import argparse
import json

import pytest

from resnetlab.cli.options import add_data_arguments, data_kwargs
from resnetlab.data import list_datasets, load_dataset
from resnetlab.data.registry import resolve_root
from resnetlab.data.stats import cached_stats
from resnetlab.errors import ConfigError


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

    assert cached_stats("toy:abc", compute) == ((0.25,), (0.5,))
    assert cached_stats("toy:abc", compute) == ((0.25,), (0.5,))
    assert len(calls) == 1
    path = tmp_path / "cache" / "stats.json"
    assert json.loads(path.read_text())["toy:abc"] == {"mean": [0.25], "std": [0.5]}
    path.write_text("{not json")
    assert cached_stats("toy:abc", compute) == ((0.25,), (0.5,))
    assert len(calls) == 2
