"""The checkpoint format: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain types and tensors only, so loading one can never run code:

    {"format": "resnetlab-checkpoint", "version": "0.1.0",
     "model": {"name", "overrides", "num_classes", "in_channels"},
     "data": {"name", "classes", "image_size", "channels", "mean", "std"},
     "config": asdict(RunConfig),
     "state": {"model", "optimizer", "schedule", "scaler"},
     "progress": {"iteration", "epoch", "batch", "wall_s", "train_s", "images", "meter"},
     "rng": {"torch", "cuda", "numpy", "python"},
     "best": {"metric", "value", "iteration", ...} or None,
     "last_eval": the latest eval record of metrics.jsonl, or None,
     "digest": {"sha256": integrity.tensor_digest of every other field's tensors}}

Every load verifies the digest and the layout, so a damaged file is one error line naming it.

A run folder keeps ``checkpoints/last.pt``, ``best.pt`` and the last K ``step-XXXXXXXX.pt``.
Rebuilding a model from a checkpoint, and plain weight files, live in ``train.weights``.
"""

from __future__ import annotations

import math
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetlab.atomic import atomic_link, atomic_write
from resnetlab.data.files import file_problem
from resnetlab.errors import CheckpointError
from resnetlab.train.integrity import DIGEST_ALGORITHM, check_digest, tensor_digest

FORMAT = "resnetlab-checkpoint"
# The largest input a checkpoint may declare (the image reader's limit, data.images.MAX_PIXELS):
# predict and export allocate inputs of this size, so a damaged file must not ask for more.
MAX_INPUT_PIXELS = 1 << 26


def describe(
    model: str, overrides: dict, info: Any, mean: Any, std: Any, config: dict
) -> dict[str, Any]:
    """A checkpoint's ``model``, ``data`` and ``config`` sections: what was trained on what.

    Args:
        model: the registry name; ``overrides`` its constructor arguments.
        info: the dataset's ``DatasetInfo`` (classes, image size, channels).
        mean, std: the per-channel normalisation the model's inputs get.
        config: the run's config as a dict.
    """
    return {
        "model": {
            "name": model,
            "overrides": dict(overrides),
            "num_classes": len(info.classes),
            "in_channels": info.channels,
        },
        "data": {
            "name": info.name,
            "classes": list(info.classes),
            "image_size": list(info.image_size),
            "channels": info.channels,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        },
        "config": config,
    }


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
    sealed = seal(ckpt)
    atomic_write(first, lambda f: torch.save(sealed, f), run_checkpoint=True)
    for name in names[1:]:
        atomic_link(first, folder / name, run_checkpoint=True)
    for old in sorted(folder.glob("step-*.pt"))[: -keep_last or None]:
        old.unlink(missing_ok=True)


def seal(ckpt: dict[str, Any]) -> dict[str, Any]:
    """``ckpt`` with the digest of its tensors (replacing any it had), as every load expects."""
    body = {k: v for k, v in ckpt.items() if k != "digest"}
    return body | {"digest": {DIGEST_ALGORITHM: tensor_digest(body)}}


def load_newest_intact(
    folder: str | Path,
    *,
    model: str | None = None,
    map_location: str | torch.device = "cpu",
    report: bool = True,
) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint of a run's ``checkpoints/`` folder that loads: ``last.pt``, else the
    ``step-*.pt`` files from the newest down. A damaged file passed over is named in a warning
    (with ``report``), so that a torn or rotted ``last.pt`` loses only the steps since the newest
    intact one.

    Raises:
        CheckpointError: no file of the folder loads (the first file's error, and how many).
    """
    folder = Path(folder)
    steps = sorted(folder.glob("step-*.pt"), reverse=True)  # zero-padded: newest first
    candidates = [p for p in [folder / "last.pt", *steps] if p.is_file()]
    errors = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path, model=model, map_location=map_location)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for error in errors if report else ():
            warnings.warn(f"{error}; passed over", stacklevel=2)
        if errors and report:
            it = ckpt["progress"]["iteration"]
            message = f"resuming from {path} (iteration {it}), the newest intact checkpoint"
            warnings.warn(message, stacklevel=2)
        return ckpt, path
    if not errors:
        raise CheckpointError(f"{folder}: no checkpoint to resume from")
    more = f" (and {len(errors) - 1} more damaged files)" if len(errors) > 1 else ""
    raise CheckpointError(f"no intact checkpoint in {folder}: {errors[0]}{more}")


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
    """Restore what ``rng_state`` captured.

    The states may come back on a GPU (a resume loads the checkpoint with ``map_location`` set
    to the run's device); generators take CPU byte tensors only, so they are copied back.
    """
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
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
    if problem := file_problem(path, "checkpoint"):  # missing; a FIFO or device would block
        raise CheckpointError(problem)
    return path


class NotACheckpoint(CheckpointError):
    """A file that loads safely but holds no resnetlab checkpoint (a plain weight file, say)."""


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
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise NotACheckpoint(
            f"{path}: not a resnetlab checkpoint (a plain weight file loads with --weights)"
        )
    if model is not None and ckpt["model"]["name"] != model:
        raise CheckpointError(
            f"{path}: checkpoint of model {ckpt['model']['name']!r}, not {model!r}"
        )
    return ckpt


def safe_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors; a resnetlab checkpoint's layout
    and digest are verified.

    torch's warnings are silenced (a TorchScript archive, an unusual pickle protocol): what
    the file is and why it cannot be used is said in the error instead.

    Raises:
        CheckpointError: naming the file and what is wrong with it.
    """
    _refuse_other_formats(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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
        raise CheckpointError(_unreadable(path)) from None
    except Exception:
        # torch's reader of untrusted bytes raises whatever its parser trips on (IndexError,
        # KeyError, struct.error, ...): every one of them means a corrupt file.
        raise CheckpointError(_unreadable(path)) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _check_layout(obj, path)
        digest = obj.get("digest")
        body = {k: v for k, v in obj.items() if k != "digest"}
        check_digest(
            body, digest.get(DIGEST_ALGORITHM) if isinstance(digest, dict) else None, str(path)
        )
    return obj


# torch.save's files: a zip archive, or (before torch 1.6) a pickle of this magic number first.
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _refuse_other_formats(path: Path) -> None:
    """Name the files that are not torch.save's but are often given for one: a TorchScript or
    ONNX export, a safetensors weight file (by their first bytes, whatever their names)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return  # torch.load names what is wrong
    # safetensors: an 8-byte header length, then the JSON header. ONNX: a protobuf ModelProto,
    # ir_version (field 1, a small varint) then producer_name (field 2), as every exporter
    # writes it.
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path}: a safetensors weight file, not a checkpoint (weights start a run with "
            "--weights)"
        )
    if head[8:10] == b'{"':
        raise CheckpointError(
            f"{path}: a safetensors file, not a torch file (named .safetensors, it loads as "
            "weights with --weights)"
        )
    if (head[:1] == b"\x08" and head[2:3] == b"\x12") or path.suffix == ".onnx":
        raise CheckpointError(f"{path}: an ONNX export, not a checkpoint or a weight file")
    if not head.startswith(ZIP_MAGIC):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # a damaged archive trips zipfile in many ways: torch.load names it
        return
    if any(name == "constants.pkl" or name.endswith("/constants.pkl") for name in names):
        raise CheckpointError(
            f"{path}: a TorchScript export (torch.jit.save), not a checkpoint or a weight "
            "file; give the checkpoint it was exported from"
        )


def _unreadable(path: Path) -> str:
    """The error for a file torch cannot read: a plain pickle is told from a damaged file."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(LEGACY_MAGIC))
    except OSError:
        head = b""
    if head.startswith(b"\x80") and head != LEGACY_MAGIC:
        return f"{path}: a plain pickle, not a torch file (resnetlab reads torch.save's files)"
    return f"{path}: corrupt or not a torch file"


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
    for key in ("mean", "std"):
        values = data[key]
        if not all(math.isfinite(v) for v in values) or (key == "std" and min(values) <= 0):
            rule = "finite and above 0" if key == "std" else "finite"
            raise CheckpointError(
                f"{path}: damaged checkpoint: data.{key} must be {rule}; got {values}"
            )
    if len(data["classes"]) != m["num_classes"]:
        raise CheckpointError(
            f"{path}: damaged checkpoint: {len(data['classes'])} class names for a model of "
            f"{m['num_classes']} outputs"
        )
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
