"""Figures of the signal-propagation analysis (``resnetlab.analysis.signal``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from resnetlab.analysis.figures import (
    FigureFiles,
    family_colour,
    family_name,
    family_style,
    join_depths,
    save,
)
from resnetlab.analysis.plots import STYLE
from resnetlab.analysis.signal import SignalProfile

NORM_TITLES = {"bn": "with BN", "none": "without BN"}


def plot_signal_profiles(profiles: Sequence[SignalProfile], stem: str | Path) -> FigureFiles:
    """Activation std (top) and weight-gradient norm (bottom) against layer index, log scale, one
    column per norm (with BN, without BN), every depth and family as its own line."""
    norms = _norms(profiles)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(4.4 * len(norms) + 1.2, 6.2), layout="constrained")
        axes = fig.subplots(2, len(norms), squeeze=False)
        for col, norm in enumerate(norms):
            top, bottom = axes[0][col], axes[1][col]
            for p in (p for p in profiles if p.norm == norm):
                kw = {
                    "color": family_colour(p.residual, p.depth),
                    "label": family_name(p.residual, p.depth),
                }
                acts, grads = p.activation_std, p.main_path_grads()
                top.plot(np.arange(len(acts)), acts, **family_style(p.residual, len(acts)), **kw)
                bottom.plot(
                    np.arange(len(grads)), grads, **family_style(p.residual, len(grads)), **kw
                )
            top.set_title(f"activations at initialisation, {NORM_TITLES[norm]}")
            bottom.set_title(f"weight gradients at initialisation, {NORM_TITLES[norm]}")
            top.set_xlabel("point index (0 = stem, then each block)")
            bottom.set_xlabel("conv index (0 = stem, input side)")
            for ax in (top, bottom):
                ax.set_yscale("log")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("std of the output")
        axes[1][0].set_ylabel("weight-gradient L2 norm")
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
        depths = join_depths([p.depth for p in profiles])
        alt = (
            "Activation standard deviation (top) and weight-gradient norm (bottom) against layer "
            f"index at initialisation, log scale, for plain nets (solid, circles) and ResNets "
            f"(dashed, squares) of depth {depths}, "
            + " and ".join(NORM_TITLES[n] for n in norms)
            + "."
        )
        return save(fig, stem, alt)


def plot_signal_slopes(profiles: Sequence[SignalProfile], stem: str | Path) -> FigureFiles:
    """The fitted change of log-activation (left) and log-gradient (right) per layer against
    depth: one line per family and norm (filled markers with BN, open without)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8.4, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2, sharex=True)
        for norm in _norms(profiles):
            for residual in (False, True):
                group = sorted(
                    (p for p in profiles if p.norm == norm and p.residual == residual),
                    key=lambda p: p.depth,
                )
                if not group:
                    continue
                depths = [p.depth for p in group]
                colour = family_colour(residual, 56)
                kw = {
                    **family_style(residual),
                    "color": colour,
                    "markerfacecolor": colour if norm == "bn" else "white",
                    "label": f"{'ResNet' if residual else 'plain'}, {NORM_TITLES[norm]}",
                }
                left.plot(depths, [p.activation_fit.slope for p in group], **kw)
                right.plot(depths, [p.grad_fit.slope for p in group], **kw)
        left.set_ylabel("fitted slope of ln(std) per layer")
        right.set_ylabel("fitted slope of ln(gradient norm) per layer")
        left.set_title("activations (> 0: grow towards the output)")
        right.set_title("gradients (> 0: vanish towards the input)")
        depths = sorted({p.depth for p in profiles})
        for ax in (left, right):
            ax.axhline(0.0, color="grey", lw=0.8, ls=":", zorder=0)
            ax.set_xscale("log")
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("depth (layers, log scale)")
        right.legend(loc="best")
        alt = (
            "Fitted change per layer of the log activation std (left) and of the log "
            "weight-gradient norm (right) against depth, for plain nets (solid, circles) and "
            "ResNets (dashed, squares), filled markers with BN and open markers without; zero "
            "means the signal neither grows nor shrinks."
        )
        return save(fig, stem, alt)


def _norms(profiles: Sequence[SignalProfile]) -> list[str]:
    return [n for n in NORM_TITLES if any(p.norm == n for p in profiles)]
