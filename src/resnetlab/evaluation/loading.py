"""Loading a trained model for use: the checkpoint, the device, the expected model name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.errors import CheckpointError, ConfigError
from resnetlab.train.checkpoint import resolve_checkpoint
from resnetlab.train.precision import check_device
from resnetlab.train.weights import model_from_checkpoint


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
    path: str | Path, *, expect_model: str | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any], Path]:
    """The trained model of a checkpoint, in eval mode on ``device``.

    Args:
        path: a checkpoint file, or a run folder (its ``checkpoints/last.pt``).
        expect_model: when given, the registry name the checkpoint must hold.
        device: where the model goes.

    Returns:
        (model, checkpoint dict, the checkpoint file's path).

    Raises:
        CheckpointError: a missing, corrupt or unsafe file, or a checkpoint of another model.
    """
    resolved = resolve_checkpoint(path)
    model, ckpt = model_from_checkpoint(resolved, map_location=device)
    held = ckpt["model"]["name"]
    if expect_model is not None and held != expect_model:
        raise CheckpointError(f"{resolved}: checkpoint of model {held!r}, not {expect_model!r}")
    return model, ckpt, resolved
