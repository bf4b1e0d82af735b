"""``resnetlab experiment landscape``: loss surfaces around trained weights (Li, Xu, Taylor, Studer,
Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets", arXiv:1712.09913).

Li et al. find ResNet-56 in a smooth, nearly convex basin on CIFAR-10, and its plain twin in a
chaotic landscape. For each trained net (``--runs``, or the plain nets and ResNets of ``--depths``
trained first with the degradation experiment's recipe) we compute the training loss and error
along one or two filter-normalised random directions (``resnetlab.analysis.landscape``) on a
``--grid`` of points per axis from ``-span`` to ``span``, in eval mode, on a fixed draw of
``--subset`` images of the net's own training data. ``--jobs`` processes compute each grid; every
finished point is on disk at once (``<out>/landscape/<net>/``), so a killed experiment resumes
without computing a finished point again, and a rerun computes none.

The roughness measure is Li et al.'s (§6): the principal curvatures of the plotted surface at
each interior grid point, and the share of points where it curves downwards significantly
(``resnetlab.analysis.curvature``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from resnetlab.analysis import report
from resnetlab.analysis.curvature import NONCONVEX_RATIO, centre_index
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.landscape import Landscape, loss_landscape
from resnetlab.analysis.plots_landscape import (
    plot_landscape_contours,
    plot_landscape_curves,
    plot_landscape_surfaces,
)
from resnetlab.errors import ConfigError
from resnetlab.experiments import degradation
from resnetlab.experiments.batches import DRAW_SEED, checkpoint_batches
from resnetlab.experiments.findings import Finding
from resnetlab.experiments.landscape_summary import (
    HEADER,
    LandscapeModel,
    findings,
    summarise,
    table_rows,
)
from resnetlab.experiments.nets import Net, get_nets, load_net
from resnetlab.experiments.outputs import (
    figure_part,
    findings_part,
    markdown_table,
    trained_parts,
    write_outputs,
)

TITLE = "Loss landscapes around trained weights: plain nets vs ResNets"
DEFAULT_DEPTHS = (56,)
GRID = 21  # points per axis (Li et al. plot 51); odd, so that the trained weights are a point
SPAN = 1.0  # coordinates from -SPAN to SPAN (Li et al.'s [-1, 1])
SUBSET = 1024  # training images every point is evaluated on (Li et al. use the whole set)
EVAL_BATCH = 256  # images per forward pass (memory only)
DIRECTION_SEED = 0  # seed of the random directions (the same for every net)
PAPER = "Li et al. 2018, arXiv:1712.09913"
CITATION = (
    'Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets", '
    "arXiv:1712.09913"
)


def defaults(data: str) -> tuple[str | None, dict]:
    """The recipe of the nets the experiment trains: the degradation experiment's."""
    return degradation.defaults(data)


@dataclass(frozen=True)
class LandscapeSettings:
    """The grid and the data of every landscape (the options of ``experiment landscape``)."""

    grid: int = GRID
    span: float = SPAN
    dims: int = 2
    subset: int = SUBSET

    def check(self) -> None:
        if self.grid < 3 or self.grid % 2 == 0:
            raise ConfigError(f"--grid must be odd and at least 3 (0 on the grid); got {self.grid}")
        if not (np.isfinite(self.span) and self.span > 0):
            raise ConfigError(f"--span must be a positive number; got {self.span}")
        if self.dims not in (1, 2):
            raise ConfigError(f"--dims must be 1 or 2; got {self.dims}")
        if self.subset < 1:
            raise ConfigError(f"--subset must be at least 1; got {self.subset}")

    def axis(self) -> list[float]:
        """The coordinates along each direction; the middle one exactly 0."""
        axis = np.linspace(-self.span, self.span, self.grid)
        axis[self.grid // 2] = 0.0
        return [float(v) for v in axis]


@dataclass(frozen=True)
class LandscapeOutcome:
    """What ``run`` measured and wrote (``sections`` turns it into the report's HTML)."""

    models: list[LandscapeModel]
    findings: list[Finding]
    figures: dict[str, FigureFiles]
    settings: dict
    files: dict[str, Path]


def measure(net: Net, s: LandscapeSettings, out: Path, jobs: int, log: Callable) -> Landscape:
    """One net's landscape, computed where ``out/landscape/<net>/`` does not hold it yet."""
    model, ckpt = load_net(net)
    batches = checkpoint_batches(ckpt, "train", s.subset, EVAL_BATCH)
    axis = s.axis()
    land = loss_landscape(
        model,
        batches,
        axis,
        axis if s.dims == 2 else None,
        seed=DIRECTION_SEED,
        jobs=jobs,
        out_dir=out / "landscape" / net.name,
        label=net.label,
    )
    total, computed = land.loss.size, land.computed
    log(
        f"{net.name}: landscape: {computed} of {total} points computed, "
        f"{total - computed} read back"
    )
    return land


def curve_of(land: Landscape) -> Landscape:
    """The 1-D curve along the first direction: the surface's row at beta = 0 (the directions
    are drawn in order, so the first is the same as a 1-D landscape's), or the curve itself."""
    if land.betas is None:
        return land
    row = centre_index(land)[0]
    return replace(land, betas=None, loss=land.loss[row], error=land.error[row])


def draw_figures(
    nets: Sequence[Net], lands: Sequence[Landscape], out: Path
) -> dict[str, FigureFiles]:
    """The curves of every first-seed net, and its contours and surfaces for 2-D grids."""
    first = min(n.seed for n in nets)
    chosen = [land for n, land in zip(nets, lands, strict=True) if n.seed == first]
    figures = {
        "curves": plot_landscape_curves([curve_of(x) for x in chosen], out / "landscape_curves")
    }
    if chosen[0].betas is not None:
        figures["contours"] = plot_landscape_contours(chosen, out / "landscape_contours")
        figures["surfaces"] = plot_landscape_surfaces(chosen, out / "landscape_surfaces")
    return figures


def sections(outcome: LandscapeOutcome) -> list[str]:
    """The report's section of the landscape experiment: findings, figures and the table."""
    s, figs = outcome.settings, outcome.figures
    grid = f"{s['grid']} x {s['grid']}" if s["dims"] == 2 else f"{s['grid']}"
    parts = [
        report.paragraph(f"After {CITATION}."),
        report.paragraph(
            f"Training loss around the trained weights along {s['dims']} filter-normalised "
            f"random direction(s) (seed {DIRECTION_SEED}), on a grid of {grid} points from "
            f"-{s['span']:g} to {s['span']:g}, in eval mode on {s['subset']} images of each "
            f"net's training data (at most; drawn with seed {DRAW_SEED}). A grid point is "
            "non-convex where the plotted surface curves downwards significantly: its smallest "
            f"principal curvature is negative and at least {NONCONVEX_RATIO:g} of the largest in "
            "magnitude (Li et al. §6 judge convexity by the ratio of the principal curvatures)."
        ),
        findings_part(outcome.findings),
    ]
    for key, caption in (
        ("contours", "Contours of the training loss (log levels)."),
        ("surfaces", "The same as surfaces of log10 loss."),
        ("curves", "Along the first direction."),
    ):
        if key in figs:
            parts.append(figure_part(figs[key], caption))
    parts.append(report.table(HEADER, table_rows(outcome.models)))
    return [report.section(f"Loss landscapes ({PAPER})", *parts)]


def run(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe,
    out: str | Path,
    *,
    runs: Sequence[str | Path] | None = None,
    settings: LandscapeSettings | None = None,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> LandscapeOutcome:
    """Train (or reuse) the nets, or take ``runs``; compute (or resume) every landscape; write
    figures, results and the report into ``out``.

    Args:
        depths: depths 6n+2 of the nets to train (unused with ``runs``).
        seeds: their seeds.
        recipe: their training recipe.
        out: the experiment's folder.
        runs: run folders or checkpoints of trained nets instead.
        settings: the grid and the subset.
        jobs: runs trained side by side, and processes that compute each grid.
        command: the command line that reproduces the experiment.
        log: where progress and the findings go.
    """
    out, s = Path(out), settings or LandscapeSettings()
    s.check()
    trained = get_nets(depths, seeds, recipe, out, runs, jobs, log)
    nets = trained.nets
    lands = [measure(net, s, out, jobs, log) for net in nets]
    models = summarise(nets, lands)
    found = findings(models)
    figures = draw_figures(nets, lands, out)
    info = {**vars(s), "nets": [n.name for n in nets], "draw_seed": DRAW_SEED}
    info |= {"direction_seed": DIRECTION_SEED, "nonconvex_ratio": NONCONVEX_RATIO}
    outcome = LandscapeOutcome(models, found, figures, info, {})
    lead, tail, training = trained_parts(trained, recipe)
    files = write_outputs(
        out,
        TITLE,
        command,
        settings=info,
        models=[m.to_dict() for m in models],
        findings=found,
        sections=sections(outcome),
        tables_md=[markdown_table(HEADER, table_rows(models))],
        records={
            "landscapes": [{"net": n.name, **x.to_dict()} for n, x in zip(nets, lands, strict=True)]
        },
        lead=lead,
        tail=tail,
        extra={"training": training},
    )
    for f in found:
        log(f.text)
    log(f"report: {files['report.html']}")
    return LandscapeOutcome(models, found, figures, info, files)
