"""A checkpoint exported for serving: the model file, checked, plus ``<file>.json`` beside it.

The JSON file holds everything a server needs besides the model: the preprocessing steps and
constants (resize, crop, mean, std, channels), the input layout, the class names, and the check
that the exported model reproduces PyTorch.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from resnetlab.atomic import atomic_write, fsync_dir
from resnetlab.errors import ConfigError
from resnetlab.evaluation.loading import load_trained
from resnetlab.evaluation.preprocess import Preprocess
from resnetlab.export.check import (
    CHECK_BATCH_SIZES,
    DEFAULT_TOLERANCE,
    ExportMismatch,
    check_export,
    random_inputs,
)
from resnetlab.export.onnx import INPUT_NAME, OUTPUT_NAME, export_onnx
from resnetlab.export.torchscript import export_torchscript
from resnetlab.outputs import check_output, run_checkpoints
from resnetlab.train.checkpoint import resolve_checkpoint

EXPORTERS = {"onnx": export_onnx, "torchscript": export_torchscript}
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def default_output(checkpoint: Path, fmt: str) -> Path:
    """``RUN/export/NAME.onnx`` (or ``NAME.torchscript.pt``) for ``RUN/checkpoints/NAME.pt``
    (only the run writes into its ``checkpoints/``); beside any other checkpoint file."""
    name = checkpoint.stem + SUFFIXES[fmt]
    if run_checkpoints(os.path.realpath(checkpoint.parent)) is not None:
        return checkpoint.parent.parent / "export" / name
    return checkpoint.with_name(name)


def sidecar_path(path: str | Path) -> Path:
    """Where the preprocessing constants of an exported file go: ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def unchecked_path(path: Path) -> Path:
    """Where the export waits for its check: ``.model.onnx.unchecked.onnx`` beside its name."""
    return path.with_name(f".{path.name}.unchecked{path.suffix}")


def export_checkpoint(
    checkpoint: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    expect_model: str | None = None,
    **load_options: Any,
) -> tuple[Path, dict[str, Any]]:
    """Export a checkpoint's model, check it against eager PyTorch, and describe it in JSON.

    The file is first written under a temporary name and only takes its final name once the
    check passes, so a failed export never replaces a good file.

    Args:
        checkpoint: a checkpoint file or a run folder.
        fmt: ``"onnx"`` or ``"torchscript"``.
        out: the file to write; by default ``RUN/export/`` or beside the checkpoint
            (``default_output``). It may not be the checkpoint, by any name, nor lie in a
            run's ``checkpoints/`` (``resnetlab.outputs``).
        tolerance: the largest max abs difference of fp32 logits accepted.
        expect_model: fail unless the checkpoint holds this model; the model of a weight file.
        **load_options: for a weight file, ``data`` and ``data_root`` (see ``load_trained``).

    Returns:
        (the file written, the record written to ``<file>.json``).

    Raises:
        CheckpointError: a bad checkpoint; ConfigError: a bad format or output path;
        ExportMismatch: the exported model does not reproduce PyTorch within ``tolerance``.
    """
    if fmt not in EXPORTERS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORTERS)}; got {fmt!r}")
    resolved = resolve_checkpoint(checkpoint)
    out = default_output(resolved, fmt) if out is None else Path(out)
    _check_output(out, fmt, resolved)
    model, ckpt, resolved = load_trained(resolved, expect_model=expect_model, **load_options)
    prep = Preprocess.for_data(ckpt["data"])
    size = (prep.crop, prep.crop)
    tmp = unchecked_path(out)
    try:
        EXPORTERS[fmt](model, random_inputs(prep.channels, size, (2,))[0], tmp)
        inputs = random_inputs(prep.channels, size)
        diff = check_export(tmp, model, inputs, fmt=fmt)
        scale = _largest_logit(model, inputs)
        if not diff < tolerance:  # also catches NaN
            # The logits' scale tells a rounding difference (huge logits, e.g. an untrained
            # deep net whose BN statistics are still the initial ones) from a wrong graph.
            raise ExportMismatch(
                f"{out}: the {fmt} export differs from PyTorch by up to {diff:.3g} "
                f"(tolerance {tolerance:g}; logits up to {scale:.3g}); nothing was written"
            )
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write ({err.strerror or err})") from None
    finally:
        tmp.unlink(missing_ok=True)
    record = _record(ckpt, resolved, out, fmt, prep, (diff, scale, tolerance))
    text = json.dumps(record, indent=1) + "\n"
    try:
        atomic_write(sidecar_path(out), lambda f: f.write(text.encode()))
    except OSError as err:
        raise ConfigError(f"{sidecar_path(out)}: cannot write ({err.strerror or err})") from None
    return out, record


def _check_output(out: Path, fmt: str, checkpoint: Path) -> None:
    """Refuse an output that is a folder, has the wrong suffix, or would replace the
    checkpoint (by any name) or a file of a run's ``checkpoints/``."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name")
    if (out.suffix == ".onnx") != (fmt == "onnx"):
        raise ConfigError(f"--out {out}: ONNX files, and only they, end in .onnx")
    for path in (out, sidecar_path(out), unchecked_path(out)):
        check_output(path, [checkpoint], option="--out")


def _record(
    ckpt: dict[str, Any],
    checkpoint: Path,
    out: Path,
    fmt: str,
    prep: Preprocess,
    check: tuple[float, float, float],
) -> dict[str, Any]:
    data, m = ckpt["data"], ckpt["model"]
    diff, scale, tolerance = check
    onnx = fmt == "onnx"
    return {
        "format": fmt,
        "file": out.name,
        "checkpoint": str(checkpoint),
        "iteration": ckpt["progress"]["iteration"],
        "model": {k: m[k] for k in ("name", "overrides", "num_classes", "in_channels")},
        "dataset": data["name"],
        "classes": list(data["classes"]),
        "input": {
            "name": INPUT_NAME if onnx else None,  # TorchScript takes one positional tensor
            "layout": "NCHW",
            "dtype": "float32",
            "shape": ["batch", prep.channels, prep.crop, prep.crop],
            "pixel_range_before_normalisation": [0.0, 1.0],
        },
        "output": {
            "name": OUTPUT_NAME if onnx else None,
            "shape": ["batch", len(data["classes"])],
            "meaning": "logits; softmax over the last axis gives class probabilities",
        },
        "preprocess": prep.to_dict(),
        "check": {
            "max_abs_diff": diff,
            "max_abs_logit": scale,
            "tolerance": tolerance,
            "batch_sizes": list(CHECK_BATCH_SIZES),
            "against": "eager PyTorch fp32 on the CPU, standard-normal inputs",
            "runtime": "onnxruntime (CPUExecutionProvider)" if onnx else "torch.jit.load",
        },
        "versions": _versions(fmt),
    }


def _largest_logit(model: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return max(model(x).abs().max().item() for x in inputs)


def _versions(fmt: str) -> dict[str, str]:
    from resnetlab import __version__

    versions = {"resnetlab": __version__, "torch": torch.__version__}
    if fmt == "onnx":
        for package in ("onnx", "onnxruntime"):
            versions[package] = metadata.version(package)
    return versions
