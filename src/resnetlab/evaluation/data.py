"""The data a checkpoint is evaluated on: the right split, checked against what it was trained on.

Images are normalised with the checkpoint's mean and std (the statistics the network learned
with), not with those of the evaluation data, which matters when a model trained on one folder
of images is measured on another.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from resnetlab.data import (
    ArrayDataset,
    FolderLoader,
    Loader,
    load_dataset,
    make_loader,
    train_val_split,
)
from resnetlab.data.split import TEST_FRACTION
from resnetlab.errors import CheckpointError, ConfigError
from resnetlab.train.run import VAL_SPLIT_SEED

SPLITS = ("test", "train", "val")


def load_eval_split(
    data: dict[str, Any],
    config: dict[str, Any],
    split: str,
    *,
    name: str | None = None,
    root: str | Path | None = None,
    source: str = "the checkpoint",
    **load_kwargs: Any,
):
    """One split of the evaluation data, its classes and image format checked.

    Args:
        data: the checkpoint's ``data`` entry (name, classes, image_size, channels, mean, std).
        config: the checkpoint's run config (``asdict(RunConfig)``); on the checkpoint's own
            dataset, ``val`` and ``train`` are the run's validation and training parts (split
            off by ``data.val_fraction``); on another dataset ``train`` is its train split.
        split: ``"test"``, ``"train"`` or ``"val"``.
        name: the dataset; the checkpoint's when ``None``.
        root: its folder; for the checkpoint's dataset, the run's folder by default.
        source: the checkpoint file, for messages.
        **load_kwargs: ``download``, ``verify``, ``strict`` for ``load_dataset``.

    Returns:
        An ``ArrayDataset`` or ``FolderDataset`` whose info carries the checkpoint's statistics.

    Raises:
        CheckpointError: data whose classes, channels or image size differ from the checkpoint's.
        ConfigError: a ``val`` split the run did not hold out, or one of folder data.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    own = name is None or name == data["name"]
    name = data["name"] if name is None else name
    if own and root is None:
        root = _run_setting(config, "root", source)
    size = int(data["image_size"][0])
    source = "test" if split == "test" else "train"
    # The run's own hold-out of a folder without test/: its test split, never its train images.
    holdout = float(config.get("data", {}).get("test_fraction", TEST_FRACTION))
    ds = load_dataset(name, source, root, image_size=size, test_fraction=holdout, **load_kwargs)
    _check_matches(ds.info, data, name)
    if split != "test" and own:
        ds = _run_part(ds, config, split, name, source)
    elif split == "val":
        raise ConfigError(
            f"--split val: {name} is not the checkpoint's dataset; it has no val part"
        )
    info = dataclasses.replace(ds.info, mean=tuple(data["mean"]), std=tuple(data["std"]))
    if isinstance(ds, ArrayDataset):
        return dataclasses.replace(ds, info=info)
    ds.info = info  # FolderDataset: the loader reads its normalisation from here
    return ds


def eval_loader(
    ds, *, batch_size: int, device: torch.device, ten_crop: bool = False, workers: int = 2
) -> Loader:
    """An in-order loader over every sample of ``ds``; 10 views per image with ``ten_crop``.

    Raises:
        ConfigError: ``ten_crop`` for data other than a folder of images.
    """
    if not ten_crop:
        return make_loader(ds, batch_size, train=False, device=device, workers=workers)
    if isinstance(ds, ArrayDataset):
        raise ConfigError(
            f"--ten-crop needs folder data (--data folder); {ds.info.name} images are the "
            "network's input size already"
        )
    return FolderLoader(ds, batch_size, train=False, device=device, workers=workers, ten_crop=True)


def _check_matches(info, data: dict[str, Any], name: str) -> None:
    if tuple(info.classes) != tuple(data["classes"]):
        raise CheckpointError(
            f"--data {name}: its {len(info.classes)} classes differ from the checkpoint's "
            f"{len(data['classes'])} ({_first_difference(info.classes, data['classes'])})"
        )
    ours = (info.channels, tuple(info.image_size))
    theirs = (int(data["channels"]), tuple(data["image_size"]))
    if ours != theirs:
        raise CheckpointError(
            f"--data {name}: {ours[0]}-channel {ours[1][0]}x{ours[1][1]} images; the checkpoint "
            f"was trained on {theirs[0]}-channel {theirs[1][0]}x{theirs[1][1]} images"
        )


def _first_difference(got, expected) -> str:
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"class {i} is {a!r} here, {b!r} in the checkpoint"
    return "one list is longer"


def _run_setting(config: Any, key: str, source: str) -> Any:
    """``config.data.<key>`` of a checkpoint's run config, checked: a hand-made or damaged
    checkpoint can lack it (its layout check asks only for a dict)."""
    data = config.get("data") if isinstance(config, dict) else None
    value = data.get(key, ...) if isinstance(data, dict) else ...
    valid = {
        "root": value is None or isinstance(value, str),
        "val_fraction": type(value) in (int, float) and 0 <= value < 1,
    }
    if value is ... or not valid[key]:
        raise CheckpointError(
            f"{source}: damaged checkpoint: its run config has no valid data.{key}; got "
            f"{'nothing' if value is ... else repr(value)[:40]}"
        )
    return value


def _run_part(ds, config: dict[str, Any], split: str, name: str, source: str):
    """The training run's own ``train`` or ``val`` part of the train split."""
    fraction = _run_setting(config, "val_fraction", source)
    if fraction == 0.0:
        if split == "val":
            raise ConfigError("--split val: the run held out no validation data (val_fraction 0)")
        return ds
    if not isinstance(ds, ArrayDataset):
        raise ConfigError(f"--split {split}: {name} data has no held-out validation part")
    train, val = train_val_split(ds, fraction, VAL_SPLIT_SEED)
    return val if split == "val" else train
