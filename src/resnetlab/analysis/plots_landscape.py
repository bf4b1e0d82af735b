"""Figures of the loss-landscape analysis (``resnetlab.analysis.landscape``).

Curves and surfaces show the loss on a log scale: around a trained minimum it spans several
decades (1e-3 at the centre, 10 and more at the grid's edge), and a linear axis would show only
the edge. Contours use the same log-spaced levels in every panel, so two nets compare directly;
viridis is readable with the common colour-vision deficiencies and in grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator

from resnetlab.analysis.figures import FigureFiles, save
from resnetlab.analysis.landscape import Landscape
from resnetlab.analysis.plots import STYLE, model_colour
from resnetlab.errors import ConfigError

PLAIN_STYLE = {"ls": "-", "marker": "o"}
RESNET_STYLE = {"ls": "--", "marker": "s"}
TINY = 1e-12  # a loss of exactly 0 on a log axis


def plot_landscape_curves(landscapes: Sequence[Landscape], stem: str | Path) -> FigureFiles:
    """1-D landscapes: the loss (left, log scale) and the error (right) along one filter-
    normalised direction, one line per model; plain nets solid with circles, ResNets dashed
    with squares."""
    curves = _of_dims(landscapes, 1)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8.4, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2, sharex=True)
        for land in curves:
            kw = {**_style(land.label), "color": model_colour(land.label), "label": land.label}
            every = max(1, len(land.alphas) // 12)
            left.plot(land.alphas, np.maximum(land.loss, TINY), markevery=every, **kw)
            right.plot(land.alphas, 100 * land.error, markevery=every, **kw)
        left.set_yscale("log")
        left.set_ylabel("training loss (log scale)")
        right.set_ylabel("training error (%)")
        for ax in (left, right):
            ax.set_xlabel("step along the direction (1 = one filter norm)")
            ax.axvline(0.0, color="grey", lw=0.8, ls=":", zorder=0)
        left.legend(loc="best")
        alt = (
            "Training loss (log scale) and error along one filter-normalised random direction "
            f"around the trained weights, for {_names(curves)}. " + _centre_sentence(curves)
        )
        return save(fig, stem, alt)


def plot_landscape_contours(landscapes: Sequence[Landscape], stem: str | Path) -> FigureFiles:
    """2-D landscapes as contour maps of the loss, one panel per model, on shared log-spaced
    levels; the trained weights are the cross at the centre."""
    surfaces = _of_dims(landscapes, 2)
    levels = _levels(surfaces)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = Figure(figsize=(3.9 * len(surfaces) + 1.0, 3.6), layout="constrained")
        axes = fig.subplots(1, len(surfaces), squeeze=False)[0]
        for ax, land in zip(axes, surfaces, strict=True):
            loss = np.maximum(land.loss, TINY)
            filled = ax.contourf(
                land.alphas, land.betas, loss, levels=levels, norm=LogNorm(), cmap="viridis"
            )
            ax.contour(land.alphas, land.betas, loss, levels=levels, colors="white", linewidths=0.4)
            ax.plot([0], [0], "+", color="red", ms=10, mew=1.5)
            ax.set_title(land.label, color=model_colour(land.label))
            ax.set_xlabel("first direction")
            ax.set_aspect("equal")
        axes[0].set_ylabel("second direction")
        bar = fig.colorbar(filled, ax=list(axes), label="training loss (log scale)")
        bar.ax.yaxis.set_major_locator(LogLocator())
        bar.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        alt = (
            "Contour maps of the training loss around the trained weights (cross) on two "
            f"filter-normalised random directions, for {_names(surfaces)}, on the same "
            "log-spaced levels. " + _centre_sentence(surfaces)
        )
        return save(fig, stem, alt)


def plot_landscape_surfaces(landscapes: Sequence[Landscape], stem: str | Path) -> FigureFiles:
    """2-D landscapes as 3-D surfaces of log10(loss), one panel per model, on one z range."""
    surfaces = _of_dims(landscapes, 2)
    logs = [np.log10(np.maximum(s.loss, TINY)) for s in surfaces]
    low, high = min(z.min() for z in logs), max(z.max() for z in logs)
    with matplotlib.rc_context({**STYLE, "axes.grid": True}):
        fig = Figure(figsize=(4.2 * len(surfaces), 4.0), layout="constrained")
        for i, (land, z) in enumerate(zip(surfaces, logs, strict=True)):
            ax = fig.add_subplot(1, len(surfaces), i + 1, projection="3d")
            a, b = np.meshgrid(land.alphas, land.betas)
            ax.plot_surface(
                a, b, z, cmap="viridis", vmin=low, vmax=high, linewidth=0, antialiased=True
            )
            ax.set_zlim(low, high)
            ax.set_title(land.label, color=model_colour(land.label))
            ax.set_xlabel("first direction")
            ax.set_ylabel("second direction")
            ax.set_zlabel("log10 training loss")
        alt = (
            "Surfaces of the log10 training loss over two filter-normalised random directions "
            f"around the trained weights, for {_names(surfaces)}, on one height scale. "
            + _centre_sentence(surfaces)
        )
        return save(fig, stem, alt)


def _of_dims(landscapes: Sequence[Landscape], dims: int) -> list[Landscape]:
    chosen = [s for s in landscapes if (s.betas is None) == (dims == 1)]
    if not chosen:
        raise ConfigError(f"no {dims}-D landscapes to plot")
    return chosen


def _levels(surfaces: Sequence[Landscape]) -> np.ndarray:
    values = np.concatenate([np.maximum(s.loss, TINY).ravel() for s in surfaces])
    low, high = values.min(), values.max()
    return np.geomspace(low, high if high > low else low * 10, 16)


def _style(label: str) -> dict:
    style = RESNET_STYLE if label.startswith("resnet") else PLAIN_STYLE
    return {**style, "ms": 4, "lw": 1.3}


def _names(landscapes: Sequence[Landscape]) -> str:
    return ", ".join(s.label for s in landscapes)


def _centre_sentence(landscapes: Sequence[Landscape]) -> str:
    parts = [
        f"{s.label} {s.centre_loss:.3g} at the centre, {float(np.max(s.loss)):.3g} at most"
        for s in landscapes
    ]
    return "Loss: " + "; ".join(parts) + "."
