"""Weight files and trained models: ``.pt``/``.pth`` state dicts, ``.safetensors``, checkpoints,
and other programs' files (akamaster's CIFAR ``.th``, the course's Keras ``.h5``: ``converters``).

Every load fits the tensors to the model by name and shape first, so a file of another
architecture is one error line naming the keys that do not fit, and checks their values
(``integrity.check_state_values``). The files resnetlab writes carry the digest of their tensors:
a ``.safetensors`` file in its metadata (``resnetlab_digest``), a ``.pt``/``.pth`` file as
``{"format": "resnetlab-weights", "state_dict": ..., "digest": {"sha256": ...}}`` (the
``state_dict`` key that many checkpoints use). Files from elsewhere carry none and load as they
are: a plain state dict (torchvision's), or a dict with a ``state_dict`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.atomic import atomic_write, write_bytes
from resnetlab.data.files import file_problem
from resnetlab.errors import CheckpointError
from resnetlab.models import build_model
from resnetlab.nn import ZeroPadShortcut
from resnetlab.train import converters
from resnetlab.train.checkpoint import FORMAT, load_checkpoint, safe_load
from resnetlab.train.distributed import unwrap
from resnetlab.train.finetune import is_head
from resnetlab.train.integrity import (
    DIGEST_ALGORITHM,
    check_digest,
    check_state_values,
    tensor_digest,
)

WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")  # what save_weights writes
READ_SUFFIXES = (*WEIGHT_SUFFIXES, converters.AKAMASTER_SUFFIX, converters.KERAS_SUFFIX)
WEIGHTS_FORMAT = "resnetlab-weights"
SAFETENSORS_DIGEST = "resnetlab_digest"


def model_from_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained model of a checkpoint, in eval mode.

    Args:
        path: a checkpoint file or a run folder.
        map_location: where the weights go.

    Returns:
        (model, checkpoint dict); ``ckpt["data"]`` holds the classes, image size and
        normalisation that inputs need. A run with a weight EMA gives the EMA's weights, the
        ones its evaluations measured.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    m = ckpt["model"]
    weights = evaluated_weights(ckpt)
    # Fit the weights to a model on the meta device first: it allocates nothing, so a damaged
    # checkpoint that declares billions of classes fails here instead of exhausting memory.
    with torch.device("meta"):
        skeleton = build_model(m["name"], m["num_classes"], m["in_channels"], m["overrides"])
    _check_fit(skeleton, weights, str(path))
    model = build_model(m["name"], m["num_classes"], m["in_channels"], m["overrides"])
    load_state(model, weights, str(path))
    return model.to(map_location).eval(), ckpt


def evaluated_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint's evaluations measured: the weight EMA's if it has one."""
    ema = ckpt["state"].get("ema")
    if isinstance(ema, dict) and isinstance(ema.get("module"), dict):
        return ema["module"]
    return ckpt["state"]["model"]


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write the model's state dict to ``.pt``/``.pth`` (torch) or ``.safetensors``, atomically."""
    path = Path(path)
    _check_suffix(path, WEIGHT_SUFFIXES)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    digest = tensor_digest(state)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        write_bytes(path, save(state, metadata={"format": "pt", SAFETENSORS_DIGEST: digest}))
    else:
        wrapped = {
            "format": WEIGHTS_FORMAT,
            "state_dict": state,
            "digest": {DIGEST_ALGORITHM: digest},
        }
        atomic_write(path, lambda f: torch.save(wrapped, f))


def load_weights(
    model: nn.Module,
    path: str | Path,
    *,
    new_head: bool = False,
    say: Callable[[str], None] | None = None,
) -> nn.Module:
    """Load a weight file or a resnetlab checkpoint into ``model``.

    Torchvision's ResNet files load into our ImageNet models as they are: the names are the
    same (a ``module.`` prefix left by DataParallel is dropped). akamaster's CIFAR ``.th`` files
    need a model built with ``shortcut_pad="split"``; the course's Keras ``.h5`` files load into
    ``resnet50_signs`` (see ``converters``).

    Args:
        model: the model to fill.
        path: ``.pt``/``.pth`` (a state dict, plain or under ``state_dict``, or a checkpoint),
            ``.safetensors``, ``.th`` or ``.h5``.
        new_head: a classifier (``fc``) whose shape differs from the file's keeps the model's
            own fresh initialisation instead of failing (fine-tuning on other classes); any
            other mismatch still fails.
        say: called with one line naming the new keys and how many came from the file, when
            the head is replaced.

    Raises:
        CheckpointError: a missing, corrupt or unsafe file, or weights of another architecture.
    """
    path = Path(path)
    _check_suffix(path, READ_SUFFIXES)
    if problem := file_problem(path, "weight file"):  # missing; a FIFO would block the read
        raise CheckpointError(problem)
    source, state = _read_state(path)
    plain = unwrap(model)
    if path.suffix == converters.AKAMASTER_SUFFIX:
        _check_split_padding(plain, source)
    if new_head:
        theirs = state.get("fc.weight")
        state, fresh = _keep_new_head(plain, state)
        if fresh and say is not None:
            was = f" (the file's is for {theirs.shape[0]})" if theirs is not None else ""
            say(
                f"{source}: new classifier for {plain.fc.out_features} classes{was}: "
                f"{', '.join(fresh)} initialised here; the other {len(state) - len(fresh)} "
                "tensors from the file"
            )
    load_state(plain, state, source)
    return model


def _read_state(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(how to name the file in messages, its tensors under our names)."""
    source = str(path)
    if path.suffix == ".safetensors":
        return source, _read_safetensors(path)
    if path.suffix == converters.KERAS_SUFFIX:
        return source, converters.read_keras_h5(path)
    state = safe_load(path, "cpu")  # a resnetlab checkpoint's digest is verified there
    if path.suffix == converters.AKAMASTER_SUFFIX:
        return source, converters.from_akamaster(state, source)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        source = f"{path} (a checkpoint of model {state['model']['name']!r})"
        state = state["state"]["model"]
    elif isinstance(state, dict) and state.get("format") == WEIGHTS_FORMAT:
        digest = state.get("digest")
        expected = digest.get(DIGEST_ALGORITHM) if isinstance(digest, dict) else None
        state = state.get("state_dict")
        check_digest(state, expected, source)
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # another program's checkpoint ({"state_dict": ...})
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return source, {str(k).removeprefix("module."): v for k, v in state.items()}


def _check_split_padding(model: nn.Module, source: str) -> None:
    if any(m.pad != "split" for m in model.modules() if isinstance(m, ZeroPadShortcut)):
        raise CheckpointError(
            f"{source}: akamaster's checkpoints pad option A's zero channels on both sides; "
            "build the model with shortcut_pad='split' (--set model.overrides.shortcut_pad=split)"
        )


def _keep_new_head(
    model: nn.Module, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` with the model's own head where the file's has another shape, and its keys."""
    own = model.state_dict()
    head = [k for k in own if is_head(k)]
    if all(k in state and state[k].shape == own[k].shape for k in head):
        return state, []
    kept = {k: v for k, v in state.items() if not is_head(k)}
    return kept | {k: own[k] for k in head}, head


load_torchvision_weights = load_weights  # torchvision's files need nothing more (see above)


def _check_suffix(path: Path, suffixes: tuple[str, ...]) -> None:
    if path.suffix == ".onnx":
        raise CheckpointError(f"{path}: an ONNX export, not a checkpoint or a weight file")
    if path.suffix not in suffixes:
        raise CheckpointError(
            f"{path}: weight files end in {', '.join(suffixes)}; got {path.suffix!r}"
        )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, their digest verified where it carries one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118  (not a dict)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if SAFETENSORS_DIGEST in metadata:
        check_digest(state, metadata[SAFETENSORS_DIGEST], str(path))
    return state


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` after checking that ``state`` fits ``model`` (names,
    shapes) and holds values it can take (dtypes, finite values, BN variances), with one-line
    errors naming the file and the key."""
    _check_fit(model, state, source)
    check_state_values(model.state_dict(), state, source)
    model.load_state_dict(state, strict=True)


def _check_fit(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise ``CheckpointError`` naming the keys of ``state`` that do not fit ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{label}: {', '.join(keys[:3])}{more}")
        raise CheckpointError(f"{source}: weights do not fit the model ({'; '.join(parts)})")
