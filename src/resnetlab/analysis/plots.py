"""The experiments' figures, in one style: every model keeps its colour in every figure.

Plain nets are drawn in warm colours and ResNets in cool ones, darker with depth, so that a
reader tells ``plain56`` from ``resnet56`` and 20 layers from 56 at a glance: orange against blue
stays apart for the common colour-vision deficiencies (red-green and blue-yellow, tested with
simulated vision in ``tests/test_analysis_plots.py``), and other labels take the Okabe-Ito
palette (Okabe & Ito 2008), made for them. Colour is never the only cue: plain nets are solid
lines with circles, ResNets dashed lines with squares, so lines that lie on each other stay
apart. Each figure is saved as PNG (for the HTML report) and SVG (for print), and each has an
alt-text function (``*_alt``) that says what it shows, with its numbers, for the report's
``alt``. Figures are built with matplotlib's object API (``Figure``, no pyplot): no display and
no global backend state are involved.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from resnetlab.analysis.curves import Curves
from resnetlab.analysis.gradients import GradNorms
from resnetlab.analysis.responses import LayerResponses
from resnetlab.atomic import write_bytes

# Light to dark with depth: ColorBrewer's Oranges/Reds for plain nets, Blues/Purples for ResNets.
PLAIN_COLOURS = {
    8: "#fdae6b",
    14: "#fd8d3c",
    20: "#f16913",
    32: "#d94801",
    44: "#a63603",
    56: "#7f2704",
    110: "#67000d",
}
RESNET_COLOURS = {
    8: "#9ecae1",
    14: "#6baed6",
    20: "#4292c6",
    32: "#2171b5",
    44: "#08519c",
    56: "#08306b",
    110: "#54278f",
    1202: "#3f007d",
}
# Okabe-Ito without its yellow (too pale on white): vermillion, blue, bluish green, reddish
# purple, orange, sky blue, black.
OTHER_COLOURS = ("#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
PLAIN_STYLE = {"ls": "-", "marker": "o"}
RESNET_STYLE = {"ls": "--", "marker": "s"}
OTHER_MARKERS = ("^", "D", "v", "P", "X")
CURVE_MARKERS = ("o", "s", "^", "D", "v")  # the test-error lines of one panel, in order
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "none",  # keep text as text in SVG files
    "svg.hashsalt": "resnetlab",  # stable ids: the same figure gives the same file
}
ITERATIONS_LABEL = "iterations (optimizer steps)"


def model_colour(label: str) -> str | tuple:
    """The colour of a model in every figure.

    ``plain<depth>`` and ``resnet<depth>`` take the fixed palettes above; any other label
    (``resnet20-B``) a colour of ``OTHER_COLOURS`` chosen by a hash of its name, the same in
    every run.
    """
    match = re.fullmatch(r"(plain|resnet)(\d+)", label)
    if match:
        palette = PLAIN_COLOURS if match.group(1) == "plain" else RESNET_COLOURS
        depth = int(match.group(2))
        if depth in palette:
            return palette[depth]
    return OTHER_COLOURS[zlib.crc32(label.encode()) % len(OTHER_COLOURS)]


def line_style(label: str, points: int = 0) -> dict:
    """Line style and marker of a model: plain solid with circles, ResNet dashed with squares,
    other labels dotted with a marker chosen by a hash of the name; about a dozen markers on a
    line of ``points`` points."""
    match = re.fullmatch(r"(plain|resnet)(\d+)", label)
    if match:
        style = dict(PLAIN_STYLE if match.group(1) == "plain" else RESNET_STYLE)
    else:
        marker = OTHER_MARKERS[zlib.crc32(label.encode()) % len(OTHER_MARKERS)]
        style = {"ls": ":", "marker": marker}
    style.update(markersize=4, lw=1.3, markevery=max(1, points // 12) if points else None)
    return style


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically.

    Returns:
        The two paths.
    """
    stem = Path(stem)
    paths = []
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {}  # no timestamp: reruns give equal files
        fig.savefig(buffer, format=fmt, bbox_inches="tight", metadata=metadata)
        paths.append(write_bytes(stem.with_suffix(f".{fmt}"), buffer.getvalue()))
    return paths


def plot_error_curves(
    groups: Mapping[str, Mapping[str, Curves]], stem: str | Path, title: str = ""
) -> list[Path]:
    """Figure 6: training error (dashed) and test error (solid) against iterations.

    Args:
        groups: panel title -> {model label -> curves}; one panel per group, side by side
            (e.g. ``{"plain": {...}, "ResNet": {...}}``), all on the same error axis.
        stem: output path without suffix.
        title: figure title.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(4.6 * len(groups), 3.6), layout="constrained")
        axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)
        for ax, (group, curves) in zip(axes[0], groups.items(), strict=True):
            for k, (label, c) in enumerate(curves.items()):
                colour = model_colour(label)
                ax.plot(c.train_iterations, 100 * c.train_error, "--", color=colour, lw=1.2)
                ax.plot(
                    c.eval_iterations,
                    100 * c.test_error,
                    "-",
                    color=colour,
                    lw=1.6,
                    marker=CURVE_MARKERS[k % len(CURVE_MARKERS)],  # apart where lines overlap
                    markersize=4,
                    markevery=max(1, len(c.eval_iterations) // 8),
                    label=label if c.runs == 1 else f"{label} (mean of {c.runs})",
                )
            ax.set_title(group)
            ax.set_xlabel(ITERATIONS_LABEL)
            ax.legend(handles=[*ax.get_legend_handles_labels()[0], *_train_test_keys()], loc="best")
        axes[0][0].set_ylabel("error (%)")
        axes[0][0].set_ylim(bottom=0)
        if title:
            fig.suptitle(title)
        return save_figure(fig, stem)


def plot_grad_heatmaps(grads: Mapping[str, GradNorms], stem: str | Path) -> list[Path]:
    """Gradient flow as heatmaps, one per model side by side: layer (input at the top) by
    iteration, coloured by the weight-gradient norm on one shared log scale."""
    values = np.concatenate([g.norms[g.norms > 0] for g in grads.values()])
    norm = LogNorm(vmin=values.min(), vmax=values.max()) if values.size else None
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = Figure(figsize=(4.2 * len(grads) + 1, 4.0), layout="constrained")
        axes = fig.subplots(1, len(grads), squeeze=False)
        for ax, (label, g) in zip(axes[0], grads.items(), strict=True):
            extent = (g.iterations[0], g.iterations[-1], len(g.layers) - 0.5, -0.5)
            image = ax.imshow(
                np.maximum(g.norms, values.min() if values.size else 0),
                aspect="auto",
                interpolation="nearest",
                norm=norm,
                cmap="magma",
                extent=extent,
            )
            ax.set_title(label, color=model_colour(label))
            ax.set_xlabel(ITERATIONS_LABEL)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("layer index (0 = first conv, input side)")
        fig.colorbar(image, ax=axes[0].tolist(), label="weight-gradient L2 norm (log scale)")
        return save_figure(fig, stem)


def plot_grad_profiles(
    grads: Mapping[str, GradNorms], stem: str | Path, iterations: Sequence[int]
) -> list[Path]:
    """Gradient flow as lines: the weight-gradient norm of each layer at a few iterations, one
    panel per iteration, every model in its colour (log scale)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3.4 * len(iterations), 3.3), layout="constrained")
        axes = fig.subplots(1, len(iterations), sharey=True, squeeze=False)
        for ax, iteration in zip(axes[0], iterations, strict=True):
            for label, g in grads.items():
                ax.plot(
                    np.arange(len(g.layers)),
                    g.at(iteration),
                    color=model_colour(label),
                    label=label,
                    **line_style(label, len(g.layers)),
                )
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"iteration {iteration}")
            ax.set_xlabel("layer index (input -> output)")
        axes[0][0].set_ylabel("weight-gradient L2 norm")
        axes[0][-1].legend(loc="best")
        return save_figure(fig, stem)


def plot_responses(responses: Mapping[str, LayerResponses], stem: str | Path) -> list[Path]:
    """Figure 7: std of each 3x3 layer's response (after BN, before ReLU/addition), in network
    order (top) and sorted in descending order (bottom)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.4, 5.6), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
        for label, r in responses.items():
            x = np.arange(1, len(r.std) + 1)
            kw = {"color": model_colour(label), "label": label, **line_style(label, len(x))}
            top.plot(x, r.std, **kw)
            bottom.plot(x, r.sorted_std(), **kw)
        top.set_xlabel("layer index (original order)")
        bottom.set_xlabel("layer index (sorted by magnitude)")
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("std of response")
            ax.set_ylim(bottom=0)
            ax.xaxis.set_tick_params(labelbottom=True)
        top.legend(loc="best")
        return save_figure(fig, stem)


def curves_alt(groups: Mapping[str, Mapping[str, Curves]]) -> str:
    """The alt text of ``plot_error_curves``: the panels, the axes and every line's end."""
    panels = []
    for group, curves in groups.items():
        ends = ", ".join(
            f"{label} {_last(c.train_error)} training and {_last(c.test_error)} test error"
            for label, c in curves.items()
        )
        panels.append(f"{group or 'one panel'}: {ends}")
    runs = sorted({c.runs for curves in groups.values() for c in curves.values()})
    mean = "one run each" if runs == [1] else f"mean of {'/'.join(map(str, runs))} runs"
    return (
        "Error in percent against iterations, training error dashed and test error solid, one "
        f"line per model ({mean}); where the lines end: " + "; ".join(panels) + "."
    )


def heatmaps_alt(grads: Mapping[str, GradNorms]) -> str:
    """The alt text of ``plot_grad_heatmaps``: what the colour means and each model's range."""
    ranges = "; ".join(
        f"{label}: {len(g.layers)} layers over iterations {int(g.iterations[0])}-"
        f"{int(g.iterations[-1])}, norms {g.norms.min():.2g} to {g.norms.max():.2g}"
        for label, g in grads.items()
    )
    return (
        "Heatmaps of each layer's weight-gradient norm (rows: layers, input at the top; "
        f"columns: iterations), one shared logarithmic colour scale, dark is small. {ranges}."
    )


def profiles_alt(grads: Mapping[str, GradNorms], iterations: Sequence[int]) -> str:
    """The alt text of ``plot_grad_profiles``: the panels and each model's first and last layer."""
    last = iterations[-1]
    ends = "; ".join(
        f"{label}: first layer {g.at(last)[0]:.2g}, last layer {g.at(last)[-1]:.2g}"
        for label, g in grads.items()
    )
    return (
        "Weight-gradient norm against layer index (input to output, log scale), one panel per "
        f"iteration ({', '.join(map(str, iterations))}), plain nets solid with circles and "
        f"ResNets dashed with squares. At iteration {last}: {ends}."
    )


def responses_alt(responses: Mapping[str, LayerResponses]) -> str:
    """The alt text of ``plot_responses``: each model's mean and largest response std."""
    values = "; ".join(
        f"{label}: {len(r.std)} layers, mean std {r.std.mean():.2f}, largest {r.std.max():.2f}"
        for label, r in responses.items()
    )
    return (
        "Two panels: the std of each 3x3 layer's response after BN against its layer index, in "
        "network order (top) and sorted from largest to smallest (bottom), plain nets solid "
        f"with circles and ResNets dashed with squares. {values}."
    )


def _last(values: np.ndarray) -> str:
    return f"{100 * values[-1]:.1f}%" if len(values) else "no value"


def _train_test_keys() -> list[Line2D]:
    """Legend entries that explain the two line styles."""
    return [
        Line2D([], [], color="grey", ls="--", label="training error"),
        Line2D([], [], color="grey", ls="-", label="test error"),
    ]
