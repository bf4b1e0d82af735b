"""Loading a trained model for use: a checkpoint, or a weight file with the model and data it
was trained for; the device; the expected model name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.data import DatasetInfo, load_dataset
from resnetlab.errors import CheckpointError, ConfigError
from resnetlab.models import build_model, check_input_size
from resnetlab.train import converters
from resnetlab.train.checkpoint import NotACheckpoint, describe, resolve_checkpoint
from resnetlab.train.config import RunConfig
from resnetlab.train.precision import check_device
from resnetlab.train.weights import load_weights, model_from_checkpoint

# Weight files that are never checkpoints; a .pt/.pth file is one or the other.
FOREIGN_SUFFIXES = (".safetensors", converters.AKAMASTER_SUFFIX, converters.KERAS_SUFFIX)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when present, else the CPU), or a device name that exists here.

    Raises:
        ConfigError: a malformed name, or a device this machine does not have (``meta``, a
            CUDA device on a machine without one, ...).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(
            f"--device {name!r}: not a device name (cpu, cuda, cuda:N, auto)"
        ) from None
    check_device(device, f"--device {name}")
    return device


def load_trained(
    path: str | Path,
    *,
    expect_model: str | None = None,
    device: str | torch.device = "cpu",
    data: str | None = None,
    data_root: str | Path | None = None,
    data_for_weights_only: bool = False,
    **data_options: Any,
) -> tuple[nn.Module, dict[str, Any], Path]:
    """The trained model of a checkpoint or a weight file, in eval mode on ``device``.

    A weight file (``.pt``/``.pth`` state dict, ``.safetensors``, akamaster's ``.th``, the
    course's Keras ``.h5``) holds no model name, classes or normalisation: ``expect_model``
    names the model to build and ``data`` the dataset whose classes and image size it takes.
    Its inputs are normalised as the program that trained it did (``converters``), else with the
    dataset's statistics. The dict returned has a checkpoint's ``model``, ``data``, ``config``
    and ``progress`` entries either way (``progress.iteration`` is None for a weight file).

    Args:
        path: a checkpoint file, a run folder (its ``checkpoints/last.pt``), or a weight file.
        expect_model: the registry name the checkpoint must hold; for a weight file, the model.
        device: where the model goes.
        data: for a weight file, the dataset (``--data``).
        data_root: its folder (``--data-dir``).
        data_for_weights_only: refuse ``data`` and ``data_root`` with a checkpoint, which knows
            its data (``predict``, ``export``, ``explain``; ``eval`` evaluates on them).
        **data_options: ``download``, ``verify``, ``strict`` for ``load_dataset``.

    Returns:
        (model, checkpoint dict, the file's path).

    Raises:
        CheckpointError: a missing, corrupt or unsafe file, or a checkpoint of another model.
        ConfigError: a weight file without ``expect_model`` and ``data``.
    """
    resolved = resolve_checkpoint(path)
    if resolved.suffix not in FOREIGN_SUFFIXES:
        try:
            model, ckpt = model_from_checkpoint(resolved, map_location=device)
        except NotACheckpoint:
            pass  # a plain state dict: a weight file
        else:
            if data_for_weights_only and (data is not None or data_root is not None):
                raise ConfigError(
                    f"--data and --data-dir go with a weight file; {resolved} is a checkpoint, "
                    "which knows its data"
                )
            held = ckpt["model"]["name"]
            if expect_model is not None and held != expect_model:
                raise CheckpointError(
                    f"{resolved}: checkpoint of model {held!r}, not {expect_model!r}"
                )
            return model, ckpt, resolved
    if expect_model is None or data is None:
        raise ConfigError(
            f"{resolved}: a weight file, not a checkpoint: give --model NAME (the network it "
            "holds) and --data NAME (the classes and image size it was trained for)"
        )
    info = load_dataset(data, "test", data_root, **data_options).info
    record = weights_record(resolved, expect_model, info, data_root)
    m = record["model"]
    check_input_size(m["name"], info.image_size)
    model = build_model(m["name"], m["num_classes"], m["in_channels"], m["overrides"])
    load_weights(model, resolved)
    return model.to(device).eval(), record, resolved


def weights_record(
    path: Path, model: str, info: DatasetInfo, root: str | Path | None
) -> dict[str, Any]:
    """What a checkpoint would say about a weight file used on dataset ``info``."""
    norm = converters.input_normalisation(path)
    mean, std = norm if norm is not None else (info.mean, info.std)
    if len(mean) != info.channels:
        raise ConfigError(
            f"{path}: its inputs are {len(mean)}-channel images; --data {info.name} has "
            f"{info.channels}"
        )
    cfg = RunConfig()
    cfg.model.name, cfg.model.weights = model, str(path)
    cfg.model.overrides = converters.implied_overrides(path)
    cfg.data.name, cfg.data.root = info.name, None if root is None else str(root)
    return {
        **describe(model, cfg.model.overrides, info, mean, std, dataclasses.asdict(cfg)),
        "progress": {"iteration": None},
    }
