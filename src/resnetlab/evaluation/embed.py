"""Pooled features of a split: what the classifier sees, for retrieval, clustering or a new head.

The features of an image are ``model.forward_head(model.forward_features(x), pre_logits=True)``:
the globally pooled output of the last stage, the input of ``fc`` (64 numbers for the CIFAR nets,
2048 for ResNet-50). ``write_embeddings`` saves them with the labels as ``.npy`` (features in the
file, labels in ``<stem>.labels.npy``) or ``.safetensors`` (``features`` and ``labels``), plus
``<file>.json`` saying what is inside; every file is written atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.atomic import write_bytes, write_text
from resnetlab.data import Loader
from resnetlab.errors import ConfigError

SUFFIXES = (".npy", ".safetensors")


@torch.no_grad()
def embed(model: nn.Module, loader: Loader) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled features and labels of every sample of ``loader``, in its order.

    Args:
        model: a registry model (it needs ``forward_features`` and ``forward_head``), on the
            loader's device; run in eval mode, its mode restored.
        loader: an in-order loader of one view per image.

    Returns:
        (features (N, C) float32, labels (N,) int64), on the CPU.
    """
    if not hasattr(model, "forward_head"):
        raise ConfigError(f"{type(model).__name__} has no forward_head to take features from")
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for images, y in loader.epoch(0):
            if images.dim() != 4:
                raise ConfigError("embed takes one view per image (no --ten-crop)")
            pooled = model.forward_head(model.forward_features(images), pre_logits=True)  # (B, C)
            feats.append(pooled.float().cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise ConfigError("no samples to embed")
    return torch.cat(feats), torch.cat(labels)


def sidecar_path(path: Path) -> Path:
    """``feats.npy`` -> ``feats.npy.json``."""
    return path.with_name(path.name + ".json")


def labels_path(path: Path) -> Path:
    """Where a ``.npy`` file's labels go: ``feats.npy`` -> ``feats.labels.npy``."""
    return path.with_name(path.stem + ".labels.npy")


def check_output(path: Path) -> None:
    """Raise ``ConfigError`` for an output name ``write_embeddings`` cannot write."""
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"--out {path}: embeddings are written as {' or '.join(SUFFIXES)}")
    if path.is_dir():
        raise ConfigError(f"--out {path}: is a folder; give a file name")


def write_embeddings(
    path: str | Path, features: torch.Tensor, labels: torch.Tensor, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write features and labels to ``path`` (``.npy`` or ``.safetensors``) and its JSON.

    Args:
        path: the output file.
        features: (N, C) float32.
        labels: (N,) int64.
        meta: what they are (checkpoint, model, data, split, classes), stored in the JSON.

    Returns:
        The JSON record.
    """
    path = Path(path)
    check_output(path)
    feats = features.float().contiguous()
    ys = labels.to(torch.int64).contiguous()
    if path.suffix == ".npy":
        write_bytes(path, _npy(feats.numpy()))
        write_bytes(labels_path(path), _npy(ys.numpy()))
        files = {"features": path.name, "labels": labels_path(path).name}
    else:
        from safetensors.torch import save

        write_bytes(path, save({"features": feats, "labels": ys}))
        files = {"features": f"{path.name}: features", "labels": f"{path.name}: labels"}
    record = {
        **meta,
        "samples": int(feats.shape[0]),
        "dim": int(feats.shape[1]),
        "files": files,
        "features": {
            "shape": list(feats.shape),
            "dtype": "float32",
            "meaning": "global average pool of the last stage (the input of fc), eval mode",
        },
        "labels": {"shape": list(ys.shape), "dtype": "int64", "meaning": "index into classes"},
    }
    write_text(sidecar_path(path), json.dumps(record, indent=1) + "\n")
    return record


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
