"""What the analyses' figures share: family colours and line styles, and files with alt text.

Colours come from ``plots`` (plain nets warm, ResNets cool, darker with depth; orange against
blue reads for the common colour-vision deficiencies). Colour is never the only cue: plain nets
are drawn solid with circles, ResNets dashed with squares, so overlapping lines stay apart in
grey print too. Every figure function returns its files together with a short alt text that the
HTML report puts on the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from resnetlab.analysis.plots import (
    PLAIN_COLOURS,
    PLAIN_STYLE,
    RESNET_COLOURS,
    RESNET_STYLE,
    save_figure,
)

DOWNSAMPLE_COLOUR = "#6a6a6a"  # grey marks for the blocks that change shape


@dataclass(frozen=True)
class FigureFiles:
    """A figure written as PNG and SVG, with its alt text.

    Attributes:
        paths: the PNG and the SVG file.
        alt: one or two sentences that say what the figure shows, for the report's ``alt``.
    """

    paths: list[Path]
    alt: str

    @property
    def png(self) -> Path:
        """The PNG file (for the HTML report)."""
        return self.paths[0]

    @property
    def svg(self) -> Path:
        """The SVG file (for print)."""
        return self.paths[1]


def save(fig: Figure, stem: str | Path, alt: str) -> FigureFiles:
    """Write ``stem.png`` and ``stem.svg`` atomically (``plots.save_figure``); keep the alt."""
    return FigureFiles(save_figure(fig, stem), alt)


def family_colour(residual: bool, depth: int) -> str:
    """The colour of a plain net or a ResNet of ``depth``: the palette of ``plots``, else a shade
    of the same ColorBrewer ramp placed by log depth."""
    palette = RESNET_COLOURS if residual else PLAIN_COLOURS
    if depth in palette:
        return palette[depth]
    ramp = matplotlib.colormaps["Blues" if residual else "Oranges"]
    shade = 0.35 + 0.6 * min(1.0, math.log(max(depth, 2)) / math.log(1202))
    return to_hex(ramp(shade))


def family_style(residual: bool, points: int = 0) -> dict:
    """Line style and marker of a family; about a dozen markers on a line of ``points`` points."""
    style = dict(RESNET_STYLE if residual else PLAIN_STYLE)
    style.update(markersize=4, lw=1.3, markevery=max(1, points // 12) if points else None)
    return style


def family_name(residual: bool, depth: int, norm: str = "bn") -> str:
    """``plain56``, ``resnet56``; ``plain56, no BN`` for a net without BatchNorm."""
    name = f"{'resnet' if residual else 'plain'}{depth}"
    return name if norm == "bn" else f"{name}, no BN"


def join_depths(depths: list[int]) -> str:
    """``8, 20, 56 and 110``."""
    words = [str(d) for d in sorted(set(depths))]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
