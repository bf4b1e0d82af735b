"""Checks on tensors read from files: that they are the ones written, and that a model takes them.

Every checkpoint and weight file resnetlab writes carries ``tensor_digest`` of its tensors; every
load recomputes it, so a flipped bit or a torn write is named instead of answered with. Every
state loaded into a model, ours or another program's, must hold floating tensors where the model
has them, finite values, and non-negative BN running variances: a NaN weight or an int64 kernel
would otherwise reach the output as ``nan`` or a silently wrong answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from resnetlab.errors import CheckpointError

DIGEST_ALGORITHM = "sha256"


def tensor_digest(obj: Any) -> str:
    """The sha256 of every tensor in ``obj`` (nested dicts, lists, tuples), in a fixed order.

    Each tensor contributes its place in ``obj``, its dtype, its shape and its bytes, so a moved,
    retyped, reshaped or changed tensor changes the digest; values that are not tensors do not
    count (the checkpoint's layout check covers them).
    """
    digest = hashlib.new(DIGEST_ALGORITHM)
    _update(digest, obj, "")
    return digest.hexdigest()


def _update(digest: Any, obj: Any, where: str) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        digest.update(f"{where}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=repr):
            _update(digest, obj[key], f"{where}/{key!r}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            _update(digest, item, f"{where}/{i}")


def check_digest(obj: Any, expected: object, source: str) -> None:
    """Raise ``CheckpointError`` naming ``source`` unless ``obj``'s tensors have this digest."""
    if not isinstance(expected, str):
        raise CheckpointError(f"{source}: damaged file: no digest of its tensor data")
    if tensor_digest(obj) != expected:
        raise CheckpointError(
            f"{source}: damaged file: its tensor data does not match the digest it was written "
            "with (changed or torn after writing)"
        )


def check_state_values(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise ``CheckpointError`` unless ``state`` can go into a model whose state is ``own``.

    Args:
        own: the model's own ``state_dict()`` (the dtypes it expects), keys equal to ``state``'s.
        state: the tensors to load.
        source: the file, for the message.
    """
    for key, t in state.items():
        want = own[key]
        if want.is_floating_point() and not t.is_floating_point():
            raise CheckpointError(f"{source}: {key} is {_dtype(t)}, not a floating-point tensor")
        if not want.is_floating_point() and (t.is_floating_point() or t.is_complex()):
            raise CheckpointError(f"{source}: {key} is {_dtype(t)}, not an integer tensor")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{source}: {key} holds NaN or infinite values")
        if key.endswith("running_var") and bool((t < 0).any()):
            raise CheckpointError(f"{source}: {key} (a BN running variance) holds negative values")


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")
