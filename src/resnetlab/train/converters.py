"""Weights other programs saved, read into our state-dict names.

- **akamaster/pytorch_resnet_cifar10** (the most used CIFAR ResNet reproduction) publishes
  ResNet-20..1202 as ``.th`` files, ``{"state_dict": {"module.conv1.weight", ...,
  "module.linear.weight", ...}, "best_prec1": ...}``, saved from ``nn.DataParallel``. Its layer
  names are ours but for ``linear`` (our ``fc``); files from PyTorch before 0.4.1 hold no
  ``num_batches_tracked``. Its option A pads the zero channels on both sides
  (``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``), so the model must be
  built with ``shortcut_pad="split"``; its trainer normalises inputs with ImageNet's mean and std.
- **The deeplearning.ai course's Keras ResNet-50** (``resnet50_signs``), saved by Keras 2's
  ``model.save`` (or ``save_weights``) as HDF5: ``model_weights/<layer>/<layer>/kernel:0`` and
  the like, the layer names in ``layer_names`` and each layer's weights in ``weight_names``.
  Keras kernels are (kh, kw, in, out) and dense kernels (in, out); BN keeps gamma, beta,
  moving_mean, moving_variance. The course feeds pixels divided by 255 and nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetlab.errors import CheckpointError

AKAMASTER_SUFFIX = ".th"
KERAS_SUFFIX = ".h5"
# akamaster's trainer.py: transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, ...]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The course: X = X_orig / 255., no mean or std.
KERAS_COURSE_MEAN = (0.0, 0.0, 0.0)
KERAS_COURSE_STD = (1.0, 1.0, 1.0)

# Keras layer names of the course (res2a_branch2a, bn2a_branch1, ...) -> our module names.
_KERAS_BLOCK = re.compile(r"(res|bn)([2-5])([a-f])_branch(1|2a|2b|2c)")
_KERAS_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
             "moving_variance": "running_var"}  # fmt: skip


def implied_overrides(path: str | Path) -> dict[str, Any]:
    """Model arguments a weight file needs: ``shortcut_pad="split"`` for akamaster's ``.th``."""
    return {"shortcut_pad": "split"} if Path(path).suffix == AKAMASTER_SUFFIX else {}


def input_normalisation(path: str | Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) the program that trained these weights fed them; None if unknown."""
    suffix = Path(path).suffix
    if suffix == AKAMASTER_SUFFIX:
        return IMAGENET_MEAN, IMAGENET_STD
    if suffix == KERAS_SUFFIX:
        return KERAS_COURSE_MEAN, KERAS_COURSE_STD
    return None


def from_akamaster(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Our state dict from a loaded akamaster ``.th`` object (``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: no ``state_dict`` of tensors in it.
    """
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: not an akamaster checkpoint (no state_dict of tensors)")
    out = {}
    for key, tensor in state.items():
        key = str(key).removeprefix("module.")
        if key.startswith("linear."):
            key = "fc." + key.removeprefix("linear.")
        out[key] = tensor
    for key in [k for k in out if k.endswith(".running_var")]:  # PyTorch < 0.4.1 had no counter
        out.setdefault(key.removesuffix("running_var") + "num_batches_tracked", torch.tensor(0))
    return out


def read_keras_h5(path: Path) -> dict[str, torch.Tensor]:
    """Our ``resnet50_signs`` state dict from the course's Keras 2 HDF5 file.

    Raises:
        CheckpointError: not an HDF5 file, no Keras weights, or a layer we cannot place.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("model_weights", f)  # model.save; save_weights writes the root
            layers = _string_list(group, "layer_names")
            if layers is None:
                raise CheckpointError(f"{path}: no Keras weights (no layer_names attribute)")
            state: dict[str, torch.Tensor] = {}
            for layer in layers:
                names = _string_list(group[layer], "weight_names") or []
                for weight in names:
                    key = _keras_key(layer, weight, str(path))
                    state[key] = _keras_tensor(np.asarray(group[layer][weight]), key)
    except (OSError, KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable Keras HDF5 weight file ({err})") from None
    for key in [k for k in state if k.endswith(".running_var")]:
        state[key.removesuffix("running_var") + "num_batches_tracked"] = torch.tensor(0)
    return state


def _string_list(group: Any, name: str) -> list[str] | None:
    """A Keras list attribute, also when saved in chunks (``name0``, ``name1``, ...)."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, k = [], 0
        while f"{name}{k}" in group.attrs:
            chunks.append(group.attrs[f"{name}{k}"])
            k += 1
        if not chunks:
            return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for c in chunks for v in c]


def _keras_key(layer: str, weight: str, source: str) -> str:
    """``res2a_branch2a`` + ``res2a_branch2a/kernel:0`` -> ``stage2.a.branch2a.weight``."""
    kind = weight.rsplit("/", 1)[-1].split(":")[0]  # kernel, bias, gamma, ...
    if layer == "conv1":
        module = "conv1"
    elif layer == "bn_conv1":
        module = "bn1"
    elif re.fullmatch(r"fc\d+", layer):
        module = "fc"
    elif match := _KERAS_BLOCK.fullmatch(layer):
        prefix, stage, block, branch = match.groups()  # res2a_branch2b -> stage2.a.branch2b
        module = f"stage{stage}.{block}.{'branch' if prefix == 'res' else 'bn'}{branch}"
    else:
        raise CheckpointError(f"{source}: Keras layer {layer!r} has no place in resnet50_signs")
    if kind in _KERAS_BN:
        return f"{module}.{_KERAS_BN[kind]}"
    if kind in ("kernel", "bias"):
        return f"{module}.{'weight' if kind == 'kernel' else 'bias'}"
    raise CheckpointError(f"{source}: Keras weight {weight!r} of layer {layer!r} is unknown")


def _keras_tensor(value: np.ndarray, key: str) -> torch.Tensor:
    """Keras layout to ours: conv (kh, kw, in, out) -> (out, in, kh, kw); dense (in, out) ->
    (out, in)."""
    t = torch.from_numpy(np.ascontiguousarray(value))
    if key.endswith(".weight") and t.dim() == 4:
        t = t.permute(3, 2, 0, 1)
    elif key.endswith(".weight") and t.dim() == 2:
        t = t.t()
    return t.contiguous()
