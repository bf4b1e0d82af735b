"""``resnetlab plot RUN_DIR...``: the error curves of finished (or running) runs, side by side."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from resnetlab.analysis.curves import load_curves
from resnetlab.analysis.plots import plot_error_curves
from resnetlab.errors import ConfigError
from resnetlab.outputs import check_output

MAX_NAME = 100  # characters of a default file name made of run labels


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="training and test error curves of run folders, side by side",
        description="Draw the error curves (training dashed, test solid, against iterations) "
        "of each run folder's metrics.jsonl, one panel per run (or all in one with --overlay), "
        "and write OUT.png and OUT.svg.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (with metrics.jsonl)")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="output path without suffix (default: RUN_DIR/curves for one run; for several, "
        "curves-LABEL-LABEL... in the folder that holds them)",
    )
    p.add_argument("--overlay", action="store_true", help="all runs in one panel")
    p.add_argument("--title", default="", help="figure title")
    p.set_defaults(func=run_plot)


def run_label(run_dir: Path) -> str:
    """A run's name in the figure: its folder name, less a trailing ``-seed<k>`` if the folder
    names a model that way (``plain56-seed0`` -> ``plain56``), so it keeps the model's colour."""
    return re.sub(r"-seed\d+$", "", run_dir.resolve().name) or str(run_dir)


def run_plot(args: argparse.Namespace) -> int:
    runs = [Path(r) for r in args.runs]
    for run in runs:
        if not (run / "metrics.jsonl").is_file():
            raise ConfigError(f"{run}: not a run folder (no metrics.jsonl)")
    labels = [run_label(r) for r in runs]
    if len(set(labels)) < len(labels):  # two seeds of one model: keep their folder names
        labels = [r.resolve().name for r in runs]
    curves = {label: load_curves(run) for label, run in zip(labels, runs, strict=True)}
    stem = Path(args.out) if args.out else default_stem(runs, labels)
    inputs = [run / "metrics.jsonl" for run in runs]
    for suffix in (".png", ".svg"):
        check_output(stem.with_suffix(suffix), inputs, option="--out" if args.out else "")
    # One panel per run, or one panel with every run.
    groups = {"": curves} if args.overlay else {label: {label: c} for label, c in curves.items()}
    png, svg = plot_error_curves(groups, stem, title=args.title)
    print(f"wrote {png} and {svg.name}")
    return 0


def default_stem(runs: list[Path], labels: list[str]) -> Path:
    """Beside the runs, never in the current folder: ``RUN/curves`` for one run, else
    ``curves-LABEL-LABEL...`` in the folder that holds them all."""
    if len(runs) == 1:
        return runs[0] / "curves"
    try:
        parent = os.path.commonpath(runs)
    except ValueError:  # relative and absolute paths mixed
        parent = os.path.commonpath([os.path.abspath(r) for r in runs])
    name = "curves-" + "-".join(labels)
    if len(name) > MAX_NAME:
        name = f"curves-{len(runs)}-runs"
    return Path(parent or ".") / name
