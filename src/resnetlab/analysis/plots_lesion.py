"""Figures of the lesion analysis (``resnetlab.analysis.lesion``, ``resnetlab.analysis.paths``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from resnetlab.analysis.figures import (
    DOWNSAMPLE_COLOUR,
    FigureFiles,
    family_colour,
    family_style,
    save,
)
from resnetlab.analysis.lesion import LesionStudy
from resnetlab.analysis.paths import PathGradients
from resnetlab.analysis.plots import STYLE


def plot_single_deletions(studies: Sequence[LesionStudy], stem: str | Path) -> FigureFiles:
    """Test error with each single block deleted, against the block's index; the intact net's
    error as a dotted line in the same colour, downsampling blocks on grey bands."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.6, 3.6), layout="constrained")
        ax = fig.subplots()
        for s in studies:
            colour = _colour(s)
            x = np.arange(1, len(s.blocks) + 1)
            ax.plot(
                x, 100 * s.single_error, color=colour, label=s.label, **family_style(s.residual)
            )
            ax.axhline(100 * s.baseline_error, color=colour, lw=1.0, ls=":")
        for i, changes in enumerate(studies[0].changes_shape, start=1):
            if changes:
                ax.axvspan(i - 0.4, i + 0.4, color=DOWNSAMPLE_COLOUR, alpha=0.2, lw=0)
        keys = [
            Line2D([], [], color="grey", ls=":", label="intact net"),
            Line2D([], [], color=DOWNSAMPLE_COLOUR, alpha=0.4, lw=6, label="downsampling block"),
        ]
        ax.legend(handles=[*ax.get_legend_handles_labels()[0], *keys], loc="best")
        ax.set_xlabel("deleted block (1 = first, input side)")
        ax.set_ylabel("test error (%)")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        alt = (
            "Test error with one block deleted at test time, for each block in turn, for "
            + _names(studies)
            + "; dotted lines are the intact nets' errors and grey bands mark the downsampling "
            "blocks. " + _worst_sentence(studies)
        )
        return save(fig, stem, alt)


def plot_random_lesions(studies: Sequence[LesionStudy], stem: str | Path) -> FigureFiles:
    """Test error against the number of random blocks deleted (left) and of random pairs of
    blocks swapped (right): the mean over the draws, with their range shaded."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8.4, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2, sharey=True)
        for s in studies:
            for ax, errors in ((left, s.deletion_errors), (right, s.swap_errors)):
                if not errors:
                    continue
                ks = sorted(errors)
                runs = [100 * np.asarray(errors[k]) for k in ks]
                colour = _colour(s)
                ax.fill_between(
                    ks, [r.min() for r in runs], [r.max() for r in runs], color=colour, alpha=0.15
                )
                ax.plot(
                    ks,
                    [r.mean() for r in runs],
                    color=colour,
                    label=s.label,
                    **family_style(s.residual, len(ks)),
                )
        left.set_xlabel("blocks deleted (random, same shape)")
        right.set_xlabel("pairs of blocks swapped (random, same shape)")
        left.set_ylabel("test error (%)")
        left.set_ylim(bottom=0)
        for ax in (left, right):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.legend(loc="best")
        alt = (
            "Test error against the number of blocks deleted at random (left) and of pairs of "
            "same-shape blocks swapped at random (right), mean over the draws with their range "
            f"shaded, for {_names(studies)}."
        )
        return save(fig, stem, alt)


def plot_path_view(paths: Sequence[PathGradients], stem: str | Path) -> FigureFiles:
    """Veit et al. Figure 6: the distribution of path lengths (left), the gradient norm of one
    path of each length (middle, log scale), and the gradient all paths of a length carry
    together, as a share of the sum over lengths (right)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11.0, 3.4), layout="constrained")
        dist, single, total = fig.subplots(1, 3)
        for p in paths:
            colour = family_colour(True, 2 * (len(p.counts) - 1) + 2)  # a CIFAR net's depth
            lengths = np.arange(len(p.counts))
            dist.plot(
                lengths,
                p.counts / p.counts.sum(),
                color=colour,
                label=p.label,
                **family_style(True, len(lengths)),
            )
            ok = np.isfinite(p.mean_norm)
            single.errorbar(
                lengths[ok],
                p.mean_norm[ok],
                yerr=p.std_norm[ok],
                color=colour,
                fmt="s--",
                ms=3,
                lw=1.0,
                capsize=2,
                label=p.label,
            )
            share = p.total()[ok] / np.nansum(p.total())
            total.plot(
                lengths[ok], share, color=colour, label=p.label, **family_style(True, int(ok.sum()))
            )
        dist.set_ylabel("share of paths")
        single.set_ylabel("gradient norm of one path")
        single.set_yscale("log")
        total.set_ylabel("share of the total gradient")
        for ax, title in (
            (dist, "path lengths"),
            (single, "per path"),
            (total, "all paths of a length"),
        ):
            ax.set_xlabel("path length (branches taken)")
            ax.set_title(title)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        dist.legend(loc="best")
        peak = ", ".join(
            f"length {int(np.nanargmax(p.total()))} of {len(p.counts) - 1} for {p.label}"
            for p in paths
        )
        alt = (
            "The distribution of path lengths (binomial), the input-gradient norm of a single "
            "path against its length (log scale), and the share of the gradient that all paths "
            f"of each length carry together; the largest share comes from paths of {peak}."
        )
        return save(fig, stem, alt)


def _colour(study: LesionStudy) -> str:
    depth = 2 * len(study.blocks) + 2  # CIFAR nets: 2 layers per block, the stem and the fc
    return family_colour(study.residual, depth)


def _names(studies: Sequence[LesionStudy]) -> str:
    words = [
        f"{s.label} ({'solid, circles' if not s.residual else 'dashed, squares'})" for s in studies
    ]
    return ", ".join(words)


def _worst_sentence(studies: Sequence[LesionStudy]) -> str:
    parts = []
    for s in studies:
        same = [e for e, c in zip(s.single_error, s.changes_shape, strict=True) if not c]
        if same:
            parts.append(
                f"{s.label}: intact {100 * s.baseline_error:.1f}%, at most "
                f"{100 * max(same):.1f}% without one same-shape block"
            )
    return ("; ".join(parts) + ".") if parts else ""
