"""``resnetlab experiment lesion``: residual networks as ensembles of shallow paths (Veit, Wilber,
Belongie 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow Networks",
arXiv:1605.06431).

On trained nets, plain twins and ResNets side by side (``--runs`` run folders or checkpoints, or
the plain nets and ResNets of ``--depths`` trained first with the degradation experiment's recipe):

- **single deletions**: each block deleted at test time in turn (a residual block keeps its
  shortcut; the plain twin's block gives way to the identity, cutting its only path), the test
  error per block, downsampling blocks reported apart (``resnetlab.analysis.lesion``);
- **random deletions and swaps**: ``k`` random same-shape blocks deleted, ``k`` random pairs of
  them swapped, ``--draws`` draws per k; the error against k;
- **the path view** (ResNets): the binomial distribution of path lengths and the gradient that
  paths of each length carry to the first block, by routed backward passes through sampled paths
  (``resnetlab.analysis.paths``), on a batch of training images.

Errors are measured on a fixed draw of ``--test-images`` images of each net's own test split (all
of it when smaller), normalised with its checkpoint's statistics. Every net's result is a part kept
in ``<out>/lesion/`` (``parts.run_parts``), so a rerun recomputes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.lesion import LesionStudy, lesion_study
from resnetlab.analysis.paths import PathGradients, path_gradients, path_length_counts
from resnetlab.analysis.plots_lesion import (
    plot_path_view,
    plot_random_lesions,
    plot_single_deletions,
)
from resnetlab.errors import ConfigError
from resnetlab.experiments import degradation
from resnetlab.experiments.batches import DRAW_SEED, checkpoint_batches
from resnetlab.experiments.findings import Finding
from resnetlab.experiments.lesion_summary import LesionModel, findings, summarise
from resnetlab.experiments.nets import Net, TrainedNets, analysis_threads, get_nets, load_net
from resnetlab.experiments.outputs import (
    figure_part,
    findings_part,
    markdown_table,
    trained_parts,
    write_outputs,
)
from resnetlab.experiments.parts import Part, run_parts

TITLE = "Lesions: deleting and swapping blocks of trained plain nets and ResNets"
DEFAULT_DEPTHS = (20, 56)
TEST_IMAGES = 1000  # a fixed draw of the test split (CIFAR-10 has 10,000; digits 360)
DRAWS = 5  # random sets per k (Veit et al. average several)
PATH_SAMPLES = 8  # sampled paths per length (every path where there are fewer)
PATH_IMAGES = 64  # training images in the path view's batch
EVAL_BATCH = 250  # images per forward pass (memory only)
LESION_SEED = 0  # seed of the random deletions, swaps and sampled paths: the same for every net
PAPER = "Veit et al. 2016, arXiv:1605.06431"
CITATION = (
    'Veit, Wilber, Belongie 2016, "Residual Networks Behave Like Ensembles of Relatively '
    'Shallow Networks", arXiv:1605.06431'
)


def defaults(data: str) -> tuple[str | None, dict]:
    """The recipe of the nets the experiment trains: the degradation experiment's."""
    return degradation.defaults(data)


@dataclass(frozen=True)
class LesionSettings:
    """How the nets are measured (the options of ``resnetlab experiment lesion``)."""

    test_images: int = TEST_IMAGES
    draws: int = DRAWS
    path_samples: int = PATH_SAMPLES
    path_images: int = PATH_IMAGES

    def check(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1; got {value}")


@dataclass(frozen=True)
class LesionOutcome:
    """What ``run`` measured and wrote (``sections`` turns it into the report's HTML)."""

    models: list[LesionModel]
    findings: list[Finding]
    figures: dict[str, FigureFiles]
    settings: dict
    files: dict[str, Path]


def measure(net: Net, s: LesionSettings) -> dict:
    """One part: the lesions of one trained net, and its path view if it is a ResNet."""
    model, ckpt = load_net(net)
    test = checkpoint_batches(ckpt, "test", s.test_images, EVAL_BATCH)
    study = lesion_study(model, test, draws=s.draws, seed=LESION_SEED, label=net.label)
    paths = None
    if study.residual:
        ((images, labels),) = checkpoint_batches(ckpt, "train", s.path_images, s.path_images)
        paths = path_gradients(
            model, images, labels, s.path_samples, seed=LESION_SEED, label=net.label
        )
    return {
        "lesion": study.to_dict(),
        "paths": None if paths is None else paths.to_dict(),
        "path_counts": path_length_counts(model),
    }


def plan(nets: Sequence[Net], s: LesionSettings, out: Path) -> list[Part]:
    """One part per net."""
    settings = {**vars(s), "draw_seed": DRAW_SEED, "lesion_seed": LESION_SEED}
    return [
        Part(
            name=f"{net.name}: lesions",
            path=out / "lesion" / f"{net.name}.json",
            settings={**net.settings(), **settings},
            compute=measure,
            args=(net, s),
            cost=net.depth,
        )
        for net in nets
    ]


def draw_figures(
    nets: Sequence[Net], studies: Sequence[LesionStudy], paths: Sequence, out: Path
) -> dict[str, FigureFiles]:
    """Per depth: single deletions and random lesions of the first seed's nets; the path view of
    every first-seed ResNet."""
    first = min(n.seed for n in nets)
    figures = {}
    for depth in sorted({n.depth for n in nets}):
        chosen = [
            s for n, s in zip(nets, studies, strict=True) if n.depth == depth and n.seed == first
        ]
        if chosen:
            figures[f"single_{depth}"] = plot_single_deletions(
                chosen, out / f"lesion_single_{depth}"
            )
            figures[f"random_{depth}"] = plot_random_lesions(chosen, out / f"lesion_random_{depth}")
    views = [p for n, p in zip(nets, paths, strict=True) if p is not None and n.seed == first]
    if views:
        figures["paths"] = plot_path_view(views, out / "lesion_paths")
    return figures


HEADER = (
    "model",
    "seeds",
    "intact",
    "one same-shape block: mean rise",
    "worst same-shape",
    "worst downsampling",
    "k = 1 deleted",
    "most deleted",
    "gradient-weighted path length",
)


def table_rows(models: Sequence[LesionModel]) -> list[tuple[str, ...]]:
    """One row per model (errors in %)."""
    rows = []
    for m in models:
        ks = sorted(m.deletions)
        rows.append(
            (
                m.label,
                str(len(m.seeds)),
                m.baseline.text(1, 100, "%"),
                f"{m.same_shape_rise.text(1, 100)} points",
                m.same_shape_worst.text(1, 100, "%"),
                m.downsampling_worst.text(1, 100, "%") if m.downsampling_worst.values else "",
                m.deletions[ks[0]].text(1, 100, "%") if ks else "",
                f"{m.deletions[ks[-1]].text(1, 100, '%')} (k = {ks[-1]})" if ks else "",
                ""
                if m.gradient_length is None
                else f"{m.gradient_length.text(1)} of {len(m.blocks)}",
            )
        )
    return rows


def block_rows(models: Sequence[LesionModel], depth: int) -> tuple[list[str], list[list[str]]]:
    """Per block of the nets of ``depth``: its error with the block deleted in each model,
    the downsampling blocks after the same-shape ones."""
    group = [m for m in models if m.depth == depth]
    header = ["block", "changes shape", *(m.label for m in group)]
    first = group[0]
    order = sorted(range(len(first.blocks)), key=lambda i: (first.changes_shape[i], i))
    rows = [
        [first.blocks[i], "yes" if first.changes_shape[i] else "no"]
        + [m.single[i].text(1, 100, "%") for m in group]
        for i in order
    ]
    return header, rows


def sections(outcome: LesionOutcome) -> list[str]:
    """The report's section of the lesion experiment: findings, figures and tables."""
    s, figs = outcome.settings, outcome.figures
    parts = [
        report.paragraph(f"After {CITATION}."),
        report.paragraph(
            f"Blocks deleted or swapped at test time in trained nets; test error on "
            f"{s['test_images']} images of each net's test split (at most; drawn with seed "
            f"{DRAW_SEED}), {s['draws']} random draws per k (seed {LESION_SEED}). A deleted "
            "residual block keeps its shortcut; a deleted plain block gives way to the identity. "
            "Downsampling blocks (which change the shape) are reported apart and left out of the "
            "random deletions and swaps."
        ),
        findings_part(outcome.findings),
    ]
    for depth in sorted({m.depth for m in outcome.models}):
        if f"single_{depth}" in figs:
            parts.append(figure_part(figs[f"single_{depth}"], f"Single deletions, depth {depth}."))
            parts.append(figure_part(figs[f"random_{depth}"], f"Error against k, depth {depth}."))
        parts.append(report.table(*block_rows(outcome.models, depth)))
    if "paths" in figs:
        parts.append(figure_part(figs["paths"], "The path view (Veit et al. Figure 6)."))
    parts.append(report.table(HEADER, table_rows(outcome.models)))
    return [report.section(f"Lesions ({PAPER})", *parts)]


def run(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe,
    out: str | Path,
    *,
    runs: Sequence[str | Path] | None = None,
    settings: LesionSettings | None = None,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> LesionOutcome:
    """Train (or reuse) the nets, or take ``runs``; measure every net; write figures, results and
    the report into ``out``.

    Args:
        depths: depths 6n+2 of the nets to train (unused with ``runs``).
        seeds: their seeds.
        recipe: their training recipe.
        out: the experiment's folder.
        runs: run folders or checkpoints of trained nets instead.
        settings: the measurement's settings.
        jobs: runs trained, and nets measured, side by side.
        command: the command line that reproduces the experiment.
        log: where progress and the findings go.
    """
    out, s = Path(out), settings or LesionSettings()
    s.check()
    trained: TrainedNets = get_nets(depths, seeds, recipe, out, runs, jobs, log)
    nets = trained.nets
    kept = run_parts(plan(nets, s, out), jobs=jobs, threads=analysis_threads(jobs), log=log)
    studies = [LesionStudy.from_dict(k["lesion"]) for k in kept]
    paths = [None if k["paths"] is None else PathGradients.from_dict(k["paths"]) for k in kept]
    models = summarise(studies, paths, [n.depth for n in nets], [n.seed for n in nets])
    found = findings(models)
    figures = draw_figures(nets, studies, paths, out)
    info = {**vars(s), "nets": [n.name for n in nets], "draw_seed": DRAW_SEED}
    outcome = LesionOutcome(models, found, figures, info, {})
    tables = [markdown_table(HEADER, table_rows(models))]
    tables += [markdown_table(*block_rows(models, d)) for d in sorted({m.depth for m in models})]
    lead, tail, training = trained_parts(trained, recipe)
    files = write_outputs(
        out,
        TITLE,
        command,
        settings=info,
        models=[m.to_dict() for m in models],
        findings=found,
        sections=sections(outcome),
        tables_md=tables,
        records={"nets": [{"net": n.name, **k} for n, k in zip(nets, kept, strict=True)]},
        lead=lead,
        tail=tail,
        extra={"training": training},
    )
    for f in found:
        log(f.text)
    log(f"report: {files['report.html']}")
    return LesionOutcome(models, found, figures, info, files)
