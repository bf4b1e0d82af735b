"""Checkpoints and weight files: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain types and tensors only, so loading one can never run code:

    {"format": "resnetlab-checkpoint", "version": "0.1.0",
     "model": {"name", "overrides", "num_classes", "in_channels"},
     "data": {"name", "classes", "image_size", "channels", "mean", "std"},
     "config": asdict(RunConfig),
     "state": {"model", "optimizer", "schedule", "scaler"},
     "progress": {"iteration", "epoch", "batch", "wall_s", "train_s", "images", "meter"},
     "rng": {"torch", "cuda", "numpy", "python"},
     "best": {"metric", "value", "iteration", ...} or None,
     "last_eval": the latest eval record of metrics.jsonl, or None}

A run folder keeps ``checkpoints/last.pt``, ``best.pt`` and the last K ``step-XXXXXXXX.pt``.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.errors import CheckpointError, ConfigError
from resnetlab.models import create_model, get_spec

FORMAT = "resnetlab-checkpoint"
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")
# The largest input a checkpoint may declare (the image reader's limit, data.images.MAX_PIXELS):
# predict and export allocate inputs of this size, so a damaged file must not ask for more.
MAX_INPUT_PIXELS = 1 << 26


# ----------------------------------------------------------------------------------------------
# Atomic files
# ----------------------------------------------------------------------------------------------
def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename, fsync the folder.

    A reader (or a resumed run) sees the old file or the new one, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def atomic_link(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` a second name of the finished file ``src`` (a copy where links fail)."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dst.parent)


def fsync_dir(folder: Path) -> None:
    """Persist a rename: fsync the folder that holds it (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def write_checkpoint(
    folder: str | Path, ckpt: dict[str, Any], *, last: bool, best: bool, keep_last: int
) -> None:
    """Write one checkpoint under the names it earns, then drop step files beyond ``keep_last``.

    Args:
        folder: the run's ``checkpoints/`` folder.
        ckpt: the checkpoint dict (its ``progress.iteration`` names the step file).
        last: write ``step-XXXXXXXX.pt`` (when ``keep_last`` > 0) and ``last.pt``.
        best: write ``best.pt``.
        keep_last: how many step files to keep.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    if last:
        if keep_last:
            names.append(f"step-{ckpt['progress']['iteration']:08d}.pt")
        names.append("last.pt")
    if best:
        names.append("best.pt")
    first = folder / names[0]
    atomic_save(ckpt, first)
    for name in names[1:]:
        atomic_link(first, folder / name)
    for old in sorted(folder.glob("step-*.pt"))[: -keep_last or None]:
        old.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as tensors and plain types (``weights_only`` loads it)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file: ``path`` itself, or ``path/checkpoints/last.pt`` for a run folder."""
    path = Path(path)
    if path.is_dir():
        inner = path / "checkpoints" / "last.pt"
        if not inner.is_file():
            raise CheckpointError(f"{path}: run folder has no checkpoints/last.pt")
        return inner
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def load_checkpoint(
    path: str | Path, *, model: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a resnetlab checkpoint safely.

    Args:
        path: a checkpoint file, or a run folder (its ``checkpoints/last.pt``).
        model: when given, the registry name the checkpoint must hold.
        map_location: where its tensors go.

    Returns:
        The checkpoint dict (see the module docstring).

    Raises:
        CheckpointError: a missing, corrupt or unsafe file, not a resnetlab checkpoint, or a
            checkpoint of another model.
    """
    path = resolve_checkpoint(path)
    ckpt = _safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a resnetlab checkpoint (a plain weight file loads with --weights)"
        )
    if model is not None and ckpt["model"]["name"] != model:
        raise CheckpointError(
            f"{path}: checkpoint of model {ckpt['model']['name']!r}, not {model!r}"
        )
    return ckpt


def build_model(
    name: str, num_classes: int, in_channels: int, overrides: dict[str, Any]
) -> nn.Module:
    """``create_model`` for data with ``in_channels`` channels; a clear error where it cannot be.

    Raises:
        ConfigError: the model cannot take such images (e.g. the SIGNS net wants 3 channels),
            or the overrides try to set ``num_classes`` (the data decides it).
    """
    if "num_classes" in overrides:
        raise ConfigError("model.overrides cannot set num_classes: the dataset decides it")
    kwargs = dict(overrides)
    if in_channels != 3:  # every builder defaults to RGB; the SIGNS net takes nothing else
        kwargs["in_channels"] = in_channels
    try:
        return create_model(name, num_classes=num_classes, **kwargs)
    except ConfigError as err:
        if "in_channels" in kwargs and "in_channels" in str(err):
            raise ConfigError(
                f"model {name!r} takes 3-channel images only; the data has {in_channels}"
            ) from None
        raise


def check_input_size(name: str, image_size: tuple[int, int]) -> None:
    """Raise ``ConfigError`` for a model with a fixed input size and data of another size."""
    spec = get_spec(name)
    if spec.family == "signs" and tuple(image_size) != spec.input_size:
        h, w = spec.input_size
        raise ConfigError(
            f"model {name!r} takes {h}x{w} images only; the data is {image_size[0]}x{image_size[1]}"
        )


def model_from_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained model of a checkpoint, in eval mode.

    Args:
        path: a checkpoint file or a run folder.
        map_location: where the weights go.

    Returns:
        (model, checkpoint dict); ``ckpt["data"]`` holds the classes, image size and
        normalisation that inputs need.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    m = ckpt["model"]
    # Fit the weights to a model on the meta device first: it allocates nothing, so a damaged
    # checkpoint that declares billions of classes fails here instead of exhausting memory.
    with torch.device("meta"):
        skeleton = build_model(m["name"], m["num_classes"], m["in_channels"], m["overrides"])
    _check_fit(skeleton, ckpt["state"]["model"], str(path))
    model = build_model(m["name"], m["num_classes"], m["in_channels"], m["overrides"])
    _load_state(model, ckpt["state"]["model"], str(path))
    return model.to(map_location).eval(), ckpt


# ----------------------------------------------------------------------------------------------
# Weight files (.pt / .pth state dicts, .safetensors)
# ----------------------------------------------------------------------------------------------
def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper and/or a ``torch.compile`` wrapper."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write the model's state dict to ``.pt``/``.pth`` (torch) or ``.safetensors``, atomically."""
    path = Path(path)
    _check_suffix(path)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    if path.suffix != ".safetensors":
        atomic_save(state, path)
        return
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata={"format": "pt"})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict (``.pt``/``.pth``/``.safetensors``, or a resnetlab checkpoint) into model.

    Torchvision's ResNet files load into our ImageNet models as they are: the names are the
    same (a ``module.`` prefix left by DataParallel is dropped).

    Raises:
        CheckpointError: a missing, corrupt or unsafe file, or weights of another architecture.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found")
    source = str(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    else:
        state = _safe_load(path, "cpu")
        if isinstance(state, dict) and state.get("format") == FORMAT:
            source = f"{path} (a checkpoint of model {state['model']['name']!r})"
            state = state["state"]["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    _load_state(unwrap(model), state, source)
    return model


load_torchvision_weights = load_weights  # torchvision's files need nothing more (see above)


def _check_suffix(path: Path) -> None:
    if path.suffix not in WEIGHT_SUFFIXES:
        raise CheckpointError(
            f"{path}: weight files end in {', '.join(WEIGHT_SUFFIXES)}; got {path.suffix!r}"
        )


def _safe_load(path: Path, map_location: str | torch.device) -> Any:
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as err:
        # A class or function: it could run code. torch words it "Unsupported global" or, for
        # modules it blocks outright (os, subprocess, ...), "unsupported GLOBAL".
        if "unsupported global" in str(err).lower():
            raise CheckpointError(
                f"{path}: refused: the file holds objects other than tensors and plain types"
            ) from None
        raise CheckpointError(f"{path}: corrupt or not a torch file") from None
    except Exception:
        # torch's reader of untrusted bytes raises whatever its parser trips on (IndexError,
        # KeyError, struct.error, ...): every one of them means a corrupt file.
        raise CheckpointError(f"{path}: corrupt or not a torch file") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _check_layout(obj, path)
    return obj


def _check_layout(ckpt: dict[str, Any], path: Path) -> None:
    """Raise ``CheckpointError`` unless the fields its readers use have the types documented above.

    A file that unpickles safely can still be damaged or hand-edited; this keeps its mistakes
    from surfacing as a KeyError or TypeError deep inside model building or preprocessing.
    """
    m, state, data = ckpt.get("model"), ckpt.get("state"), ckpt.get("data")
    weights = state.get("model") if isinstance(state, dict) else None
    fields = {
        "model": isinstance(m, dict)
        and isinstance(m.get("name"), str)
        and isinstance(m.get("overrides"), dict)
        and all(isinstance(k, str) for k in m["overrides"])
        and all(_count(m.get(k)) for k in ("num_classes", "in_channels")),
        "state": isinstance(weights, dict)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()),
        "data": isinstance(data, dict)
        and isinstance(data.get("name"), str)
        and _list_of(data.get("classes"), str)
        and _list_of(data.get("image_size"), int, 2)
        and all(_count(v) for v in data["image_size"])
        and data["image_size"][0] * data["image_size"][1] <= MAX_INPUT_PIXELS
        and _count(data.get("channels"))
        and _list_of(data.get("mean"), float, data["channels"])
        and _list_of(data.get("std"), float, data["channels"]),
        "config": isinstance(ckpt.get("config"), dict),
        "progress": isinstance(ckpt.get("progress"), dict)
        and type(ckpt["progress"].get("iteration")) is int,
    }
    bad = [name for name, ok in fields.items() if not ok]
    if bad:
        raise CheckpointError(f"{path}: damaged checkpoint: malformed {', '.join(bad)} field")
    depth = m["overrides"].get("depth")
    if type(depth) is int and depth > len(weights):  # every layer holds a weight tensor
        raise CheckpointError(
            f"{path}: damaged checkpoint: depth {depth} but only {len(weights)} weight tensors"
        )


def _count(value: Any) -> bool:
    return type(value) is int and value >= 1


def _list_of(value: Any, kind: type, length: int | None = None) -> bool:
    """A list (or tuple) of ``kind`` items (ints pass for floats), of ``length`` when given."""
    kinds = (int, float) if kind is float else (kind,)
    return (
        isinstance(value, (list, tuple))
        and (length is None or len(value) == length)
        and all(isinstance(v, kinds) and not isinstance(v, bool) for v in value)
    )


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one-line errors naming what does not fit."""
    _check_fit(model, state, source)
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
