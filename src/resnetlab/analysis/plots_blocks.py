"""Block diagrams drawn from a block's traced data flow (``resnetlab.analysis.blockgraph``).

The main path runs down the middle (input at the top), the shortcut down the right, and the
residual branch F is bracketed on the left: the picture of ``H(x) = F(x) + x`` (He et al. 2015,
arXiv:1512.03385, §3.1, Figure 2). Every box is one operation the block's ``forward`` runs, with
the module's name in the block and its settings; arrows carry the tensor's shape where it
changes. Box fills tell the kinds apart (light blue convs, light orange BNs, grey ReLUs, green
parameter-free shortcuts), and each box names its kind too, so no colour has to be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch

from resnetlab.analysis.blockgraph import BlockGraph, Node
from resnetlab.analysis.figures import FigureFiles, save
from resnetlab.analysis.plots import STYLE

# Light tints of the Okabe-Ito colours (Okabe & Ito 2008), readable under colour-vision deficiency.
FILLS = {
    "conv": "#cce6f6",
    "bn": "#fbe5b6",
    "relu": "#e4e4e4",
    "zeropad": "#c8ecdf",
    "identity": "#ffffff",
    "other": "#f1d9e6",
}
EDGE = "#333333"
BOX_W, BOX_H = 2.9, 0.64  # in data units; one row is 1 unit high
SHORTCUT_X = 3.0  # centre of the shortcut column
SHORTCUT_W = 2.5
FONT = 6.5


def plot_blocks(graphs: Sequence[BlockGraph], stem: str | Path, title: str = "") -> FigureFiles:
    """One panel per block, side by side; returns the PNG, the SVG and an alt text that walks
    through every panel's operations."""
    rows = max(len(g.main) for g in graphs)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = Figure(figsize=(3.5 * len(graphs), 0.42 * rows + 0.8), layout="constrained")
        axes = fig.subplots(1, len(graphs), squeeze=False)[0]
        for ax, graph in zip(axes, graphs, strict=True):
            _draw(ax, graph, rows)
        if title:
            fig.suptitle(title)
        alt = (
            f"Block diagrams drawn from the modules of {len(graphs)} blocks, input at the top, "
            "the residual branch F bracketed on the left and the shortcut on the right. "
            + " ".join(g.describe() for g in graphs)
        )
        return save(fig, stem, alt)


def _draw(ax: Axes, graph: BlockGraph, rows: int) -> None:
    ax.set_xlim(-2.4, SHORTCUT_X + SHORTCUT_W / 2 + 0.3)
    ax.set_ylim(-(rows - 1) - 0.7, 0.9)
    ax.set_axis_off()
    ax.set_title(graph.title, fontsize=8)
    y = {name: -float(i) for i, name in enumerate(graph.main)}
    for i, name in enumerate(graph.main):
        node = graph.node(name)
        _main_node(ax, node, y[name])
        if i + 1 < len(graph.main):
            _arrow(ax, (0, y[name] - _half(node)), (0, y[graph.main[i + 1]] + _half_next(graph, i)))
            before = graph.node(node.inputs[0]).shape if node.inputs else node.shape
            if node.shape != before:  # label the arrow where the shape changes
                ax.text(0.12, y[name] - 0.5, _shape(node.shape), fontsize=FONT - 1, color="#555")
    if graph.residual:
        _shortcut(ax, graph, y)
    _bracket(ax, graph, y)


def _main_node(ax: Axes, node: Node, y: float) -> None:
    if node.kind in ("input", "output"):
        word = "x" if node.kind == "input" else "y"
        ax.text(0, y, f"{word}   ({_shape(node.shape)})", ha="center", va="center", fontsize=8)
    elif node.kind == "add":
        ax.add_patch(Circle((0, y), 0.25, facecolor="white", edgecolor=EDGE, lw=1))
        ax.text(0, y, "+", ha="center", va="center", fontsize=10, fontweight="bold")
    else:
        _box(ax, node, 0.0, y, BOX_W)


def _box(ax: Axes, node: Node, x: float, y: float, width: float) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - BOX_H / 2),
            width,
            BOX_H,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=FILLS.get(node.kind, FILLS["other"]),
            edgecolor=EDGE,
            lw=0.8,
            ls="--" if node.kind == "identity" else "-",
        )
    )
    ax.text(x, y + 0.12, node.module, ha="center", va="center", fontsize=FONT, fontweight="bold")
    ax.text(x, y - 0.14, node.text, ha="center", va="center", fontsize=FONT - 0.5)


def _shortcut(ax: Axes, graph: BlockGraph, y: dict[str, float]) -> None:
    """The shortcut: right from x, down its column (through its modules), left into the sum."""
    add = next(n for n in graph.main if graph.node(n).kind == "add")
    top, bottom = y[graph.main[0]], y[add]
    xs = SHORTCUT_X
    ax.plot([0.9, xs], [top, top], color=EDGE, lw=1)
    stops = [top]
    for k, name in enumerate(graph.shortcut):
        row = top + (bottom - top) * (k + 1) / (len(graph.shortcut) + 1)
        _box(ax, graph.node(name), xs, row, SHORTCUT_W)
        stops += [row + BOX_H / 2, row - BOX_H / 2]
    stops.append(bottom)
    for start, end in zip(stops[::2], stops[1::2], strict=True):
        ax.plot([xs, xs], [start, end], color=EDGE, lw=1)
    _arrow(ax, (xs, bottom), (0.27, bottom))
    label = "identity: x" if graph.identity_shortcut else "shortcut"
    ax.text(
        xs + 0.1,
        (top + bottom) / 2 if graph.identity_shortcut else top - 0.25,
        label,
        fontsize=FONT,
        rotation=-90 if graph.identity_shortcut else 0,
        va="center",
    )
    summed = "F(x) + x" if graph.identity_shortcut else "F(x) + shortcut(x)"
    ax.text(-0.35, bottom, summed, ha="right", va="center", fontsize=FONT + 0.5, style="italic")


def _bracket(ax: Axes, graph: BlockGraph, y: dict[str, float]) -> None:
    """A bracket on the left over the residual branch F (the whole stack for a plain block)."""
    branch = graph.branch()
    if not branch:
        return
    top, bottom = y[branch[0]] + BOX_H / 2, y[branch[-1]] - BOX_H / 2
    x = -BOX_W / 2 - 0.2
    ax.plot([x + 0.12, x, x, x + 0.12], [top, top, bottom, bottom], color=EDGE, lw=1)
    word = "F(x)" if graph.residual else "H(x)"
    ax.text(
        x - 0.12,
        (top + bottom) / 2,
        word,
        ha="right",
        va="center",
        fontsize=8,
        style="italic",
        rotation=90,
    )


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={"arrowstyle": "-|>", "color": EDGE, "lw": 1, "shrinkA": 0, "shrinkB": 0},
    )


def _half(node: Node) -> float:
    return {"input": 0.18, "output": 0.18, "add": 0.25}.get(node.kind, BOX_H / 2)


def _half_next(graph: BlockGraph, i: int) -> float:
    return _half(graph.node(graph.main[i + 1]))


def _shape(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))
