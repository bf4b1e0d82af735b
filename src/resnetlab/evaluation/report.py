"""Evaluation results as text, a confusion-matrix picture, and files in an output folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resnetlab.atomic import atomic_write
from resnetlab.evaluation.metrics import EvalResult
from resnetlab.outputs import check_output, check_output_dir

ANNOTATE_MAX = 20  # write the counts into the cells up to this many classes
TICK_LABELS_MAX = 50  # name the classes on the axes up to this many
HEADER = "true \\ predicted"


def format_confusion(result: EvalResult) -> str:
    """The confusion matrix as a text table, one row per true class.

    Columns are predicted classes by index; each row ends with its number of images and the
    class's accuracy.
    """
    k = len(result.classes)
    names = [f"{i} {c}" for i, c in enumerate(result.classes)]
    name_w = max(len(HEADER), *(len(n) for n in names))
    cell = max(len(str(int(result.confusion.max()))), len(str(k - 1))) + 1
    lines = [
        HEADER.ljust(name_w) + "".join(str(j).rjust(cell) for j in range(k)) + "   images  accuracy"
    ]
    rows = result.confusion.tolist()
    for name, row, acc in zip(names, rows, result.per_class_accuracy, strict=True):
        acc_text = "-" if acc is None else f"{100 * acc:.2f}%"
        lines.append(
            name.ljust(name_w)
            + "".join(str(v).rjust(cell) for v in row)
            + f"  {sum(row):7d}  {acc_text:>8s}"
        )
    return "\n".join(lines) + "\n"


def format_summary(result: EvalResult, header: dict[str, str] | None = None) -> str:
    """Headline numbers as aligned ``key  value`` lines (``header`` lines first)."""
    rows = dict(header or {})
    rows["images"] = str(result.samples)
    rows["top-1 error"] = f"{100 * result.top1_error:.2f}%"
    if result.top5_error is not None:
        rows["top-5 error"] = f"{100 * result.top5_error:.2f}%"
    rows["loss"] = f"{result.loss:.4f}"
    width = max(len(k) for k in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows.items()) + "\n"


def plot_confusion(result: EvalResult, path: str | Path, title: str = "") -> Path:
    """Save the confusion matrix as a PNG, each row scaled to its class's share (recall).

    Rendered with matplotlib's Agg canvas directly (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(result.classes)
    counts = result.confusion.double()
    shares = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)  # (K, K) row-normalised
    side = min(16.0, max(4.5, 0.45 * k + 2.0))
    fig = Figure(figsize=(side + 1.0, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(shares.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= ANNOTATE_MAX:
        for i in range(k):
            for j in range(k):
                color = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=color)
    if k <= TICK_LABELS_MAX:
        ax.set_xticks(range(k), result.classes, rotation=90, fontsize=8)
        ax.set_yticks(range(k), result.classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or f"top-1 error {100 * result.top1_error:.2f}% ({result.samples} images)")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    return path


def output_paths(
    folder: str | Path,
    inputs: Sequence[str | Path | None] = (),
    *,
    folders: Sequence[str | Path | None] = (),
    option: str = "--out",
) -> dict[str, Path]:
    """The files ``write_outputs`` writes into ``folder``, by kind (``json``, ``text``, ``png``).

    Raises:
        ConfigError: ``folder`` is a file, lies in a run's ``checkpoints/`` or in one of the
            data ``folders``, or one of its files is one of ``inputs`` by another name
            (``resnetlab.outputs``).
    """
    folder = check_output_dir(folder, folders=folders, option=option)
    paths = {
        "json": folder / "eval.json",
        "text": folder / "confusion.txt",
        "png": folder / "confusion.png",
    }
    for path in paths.values():
        check_output(path, inputs, option=option)
    return paths


def write_outputs(result: EvalResult, folder: str | Path, meta: dict[str, Any]) -> dict[str, Path]:
    """Write ``eval.json``, ``confusion.txt`` and ``confusion.png`` into ``folder`` (atomically).

    Args:
        result: the metrics.
        folder: created if missing; it may not lie in a run's ``checkpoints/``, and no file
            written may be the checkpoint evaluated (``meta["checkpoint"]``) by another name.
        meta: what was evaluated (checkpoint, data, split, views), stored in ``eval.json``.

    Returns:
        The paths written, by kind (``json``, ``text``, ``png``).
    """
    paths = output_paths(folder, [meta.get("checkpoint")], option="")
    record = {**meta, **result.to_dict()}
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(paths["json"], lambda f: f.write(text.encode()))
    table = format_confusion(result)
    atomic_write(paths["text"], lambda f: f.write(table.encode()))
    plot_confusion(result, paths["png"])
    return paths
