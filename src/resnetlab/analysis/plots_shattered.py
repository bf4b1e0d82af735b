"""Figures of the shattered-gradients analysis (``resnetlab.analysis.shattered``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from resnetlab.analysis.figures import (
    FigureFiles,
    family_colour,
    family_name,
    family_style,
    join_depths,
    save,
)
from resnetlab.analysis.plots import STYLE
from resnetlab.analysis.shattered import ShatteredGradients
from resnetlab.errors import ConfigError

NORM_WORDS = {"bn": "with BN", "none": "without BN"}


def plot_shattered(
    records: Sequence[ShatteredGradients], stem: str | Path, norm: str | None = None
) -> FigureFiles:
    """Per depth (columns): the plain net's gradient along the line (top), the ResNet's (middle),
    each divided by its root mean square, and both autocorrelation functions (bottom).

    Args:
        records: records of resnetlab nets (depth and family known).
        stem: output path without suffix.
        norm: which nets to draw (``"bn"`` or ``"none"``); by default the first one present.
    """
    chosen = _of_norm(records, norm)
    depths = sorted({r.depth for r in chosen})
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2.9 * len(depths) + 0.6, 6.6), layout="constrained")
        axes = fig.subplots(3, len(depths), squeeze=False, sharey="row")
        for col, depth in enumerate(depths):
            for r in (r for r in chosen if r.depth == depth):
                colour = family_colour(r.residual, depth)
                rms = float(np.sqrt(np.mean(r.along_line**2))) or 1.0
                ax = axes[1 if r.residual else 0][col]
                ax.plot(
                    r.t, r.along_line / rms, color=colour, lw=0.8, ls=family_style(r.residual)["ls"]
                )
                ax.set_title(family_name(r.residual, depth), color=colour)
                lags = np.arange(len(r.autocorrelation))
                axes[2][col].plot(
                    lags,
                    r.autocorrelation,
                    color=colour,
                    label=f"{family_name(r.residual, depth)}: lag 1 = {r.lag1:.2f}",
                    **family_style(r.residual, len(lags)),
                )
            axes[2][col].axhline(0.0, color="grey", lw=0.8, ls=":", zorder=0)
            axes[2][col].set_xlabel("lag (points along the line)")
            axes[2][col].legend(loc="upper right")
            for row in (0, 1):
                axes[row][col].set_xlabel("t (0 = first image, 1 = second)")
        axes[0][0].set_ylabel("plain: df/dt / RMS")
        axes[1][0].set_ylabel("ResNet: df/dt / RMS")
        axes[2][0].set_ylabel("autocorrelation of the gradient")
        fig.suptitle(
            f"gradients along a line of inputs at initialisation, {NORM_WORDS[_norm(chosen)]}"
        )
        points, words = len(chosen[0].t), NORM_WORDS[_norm(chosen)]
        alt = (
            f"The derivative of the output along a line of {points} inputs for plain nets (top "
            f"row) and ResNets (middle row) of depth {join_depths(depths)} at initialisation, "
            f"{words}, and the autocorrelation of their input gradients against lag (bottom row; "
            "plain solid with circles, ResNet dashed with squares). " + _lag1_sentence(chosen)
        )
        return save(fig, stem, alt)


def plot_lag1(records: Sequence[ShatteredGradients], stem: str | Path) -> FigureFiles:
    """The lag-1 autocorrelation against depth, one line per family and norm (filled markers
    with BN, open without)."""
    nets = [r for r in records if r.depth is not None]
    if not nets:
        raise ConfigError("plot_lag1 needs records of resnetlab nets (with a depth)")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(4.6, 3.4), layout="constrained")
        ax = fig.subplots()
        for norm in [n for n in NORM_WORDS if any(r.norm == n for r in nets)]:
            for residual in (False, True):
                group = sorted(
                    (r for r in nets if r.norm == norm and r.residual == residual),
                    key=lambda r: r.depth,
                )
                if group:
                    colour = family_colour(residual, 56)
                    ax.plot(
                        [r.depth for r in group],
                        [r.lag1 for r in group],
                        color=colour,
                        markerfacecolor=colour if norm == "bn" else "white",
                        label=f"{'ResNet' if residual else 'plain'}, {NORM_WORDS[norm]}",
                        **family_style(residual),
                    )
        depths = sorted({r.depth for r in nets})
        ax.set_xscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("depth (layers, log scale)")
        ax.set_ylabel("lag-1 autocorrelation of the input gradient")
        ax.set_ylim(min(-0.05, min(r.lag1 for r in nets) - 0.05), 1.05)
        ax.axhline(0.0, color="grey", lw=0.8, ls=":", zorder=0)
        ax.legend(loc="lower left")
        alt = (
            "Lag-1 autocorrelation of the input gradient against depth at initialisation for "
            "plain nets (solid, circles) and ResNets (dashed, squares); 1 is a smooth gradient, "
            "0 a shattered one. " + _lag1_sentence(nets)
        )
        return save(fig, stem, alt)


def _of_norm(records: Sequence[ShatteredGradients], norm: str | None) -> list[ShatteredGradients]:
    nets = [r for r in records if r.depth is not None]
    if not nets:
        raise ConfigError("plot_shattered needs records of resnetlab nets (with a depth)")
    norm = norm or nets[0].norm
    chosen = [r for r in nets if r.norm == norm]
    if not chosen:
        raise ConfigError(f"no records with norm {norm!r} to plot")
    return chosen


def _norm(records: Sequence[ShatteredGradients]) -> str:
    return records[0].norm


def _lag1_sentence(records: Sequence[ShatteredGradients]) -> str:
    deepest = max(r.depth for r in records)
    values = [
        f"{family_name(r.residual, r.depth, r.norm)} {r.lag1:.2f}"
        for r in records
        if r.depth == deepest
    ]
    return f"Lag 1 at depth {deepest}: " + ", ".join(values) + "."
