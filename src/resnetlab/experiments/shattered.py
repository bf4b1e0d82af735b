"""``resnetlab experiment shattered``: shattered gradients at initialisation (Balduzzi et al. 2017,
"The Shattered Gradients Problem: If resnets are the answer, then what is the question?",
arXiv:1702.08591).

Balduzzi et al. find that the gradient of a deep plain net with respect to its input, taken along
a line of inputs, looks like white noise at initialisation: its correlation between neighbouring
inputs falls off exponentially with depth. In ResNets it falls off slowly, and the gradients stay
structured. We measure it (``resnetlab.analysis.shattered``) for plain nets and ResNets of
``--depths`` at initialisation, with or without BN (``--norms``), along the line of ``--points``
inputs between two real images of different classes (the first two of the batch that differ),
with the BN statistics of the batch. The one number per model is the lag-1 autocorrelation: 1 for
a smooth gradient, about 0 for a shattered one.

A model's gradients are *less correlated* than another's when its lag-1 value is lower beyond
the seeds' spread (``findings.compare``); every sentence of the report follows that rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.plots_shattered import plot_lag1, plot_shattered
from resnetlab.analysis.shattered import DEFAULT_POINTS, ShatteredGradients, shattered_study
from resnetlab.errors import ConfigError
from resnetlab.experiments.at_init import (
    NORM_WORDS,
    THREADS,
    InitData,
    check_norms,
    describe_batch,
    init_data,
    init_parts,
)
from resnetlab.experiments.findings import Finding, Spread, capital, choose, compare, spread, than
from resnetlab.experiments.outputs import figure_part, findings_part, markdown_table, write_outputs
from resnetlab.experiments.parts import run_parts
from resnetlab.experiments.runner import Recipe, cifar_depths
from resnetlab.experiments.signal import defaults as signal_defaults

TITLE = "Shattered gradients at initialisation: plain nets vs ResNets"
DEFAULT_DEPTHS = (8, 20, 56, 110)
DEFAULT_NORMS = ("bn",)
PAPER = "Balduzzi et al. 2017, arXiv:1702.08591"
CITATION = (
    'Balduzzi et al. 2017, "The Shattered Gradients Problem: If resnets are the answer, then '
    'what is the question?", arXiv:1702.08591'
)


def defaults(data: str) -> tuple[str | None, dict]:
    """The experiment's (preset, recipe defaults): those of the signal experiment (the batch
    gives the BN statistics and the line's two images)."""
    return signal_defaults(data)


@dataclass(frozen=True)
class ShatteredModel:
    """One model's lag-1 autocorrelation over its seeds."""

    label: str
    depth: int
    residual: bool
    norm: str
    seeds: tuple[int, ...]
    lag1: Spread

    def to_dict(self) -> dict:
        return {
            "model": self.label,
            "depth": self.depth,
            "residual": self.residual,
            "norm": self.norm,
            "seeds": list(self.seeds),
            "lag1": self.lag1.to_dict(),
        }


@dataclass(frozen=True)
class ShatteredOutcome:
    """What ``run`` measured and wrote (``sections`` turns it into the report's HTML)."""

    models: list[ShatteredModel]
    findings: list[Finding]
    figures: dict[str, FigureFiles]
    settings: dict
    files: dict[str, Path]


def line_ends(data: InitData) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The line's two images: the batch's first one and the first after it of another class.

    Raises:
        ConfigError: a batch of fewer than two images, or of one class only.
    """
    labels = data.labels.tolist()
    other = next((i for i, y in enumerate(labels) if y != labels[0]), None)
    if other is None:
        raise ConfigError(
            f"the batch of {len(labels)} image(s) holds one class only; a line between two "
            "classes needs a larger --batch-size"
        )
    return data.images[0], data.images[other], (0, other)


def measure(start, end, calibration, points, depth, norm, classes, seed) -> list[dict]:
    """One part: the plain net and the ResNet of ``depth`` and ``norm`` from ``seed``."""
    records = shattered_study(start, end, calibration, [depth], [norm], points, classes, seed)
    return [r.to_dict() for r in records]


def summarise(records: Sequence[tuple[int, ShatteredGradients]]) -> list[ShatteredModel]:
    """Group (seed, record) pairs by model, in first-seen order."""
    groups: dict[str, list[tuple[int, ShatteredGradients]]] = {}
    for seed, r in records:
        groups.setdefault(r.label, []).append((seed, r))
    return [
        ShatteredModel(
            label=label,
            depth=int(group[0][1].depth),
            residual=bool(group[0][1].residual),
            norm=group[0][1].norm,
            seeds=tuple(s for s, _ in group),
            lag1=spread(r.lag1 for _, r in group),
        )
        for label, group in groups.items()
    ]


def findings(models: Sequence[ShatteredModel]) -> list[Finding]:
    """Plain vs ResNet at every depth, and how each family's lag-1 value changes with depth."""
    found = []
    for norm in dict.fromkeys(m.norm for m in models):
        group = [m for m in models if m.norm == norm]
        depths = sorted({m.depth for m in group})
        for depth in depths:
            plain, res = _twins(group, depth)
            if plain is not None and res is not None:
                found.append(pair(plain, res))
        if len(depths) > 1:
            for residual in (False, True):
                family = sorted((m for m in group if m.residual == residual), key=lambda m: m.depth)
                if len(family) > 1:
                    found.append(depth_trend(family[0], family[-1]))
            shallow, deep = _twins(group, depths[0]), _twins(group, depths[-1])
            if None not in (*shallow, *deep):
                found.append(steeper(shallow, deep))
    return found


def pair(plain: ShatteredModel, res: ShatteredModel) -> Finding:
    """Whose gradients are more correlated between neighbouring inputs."""
    way = compare(plain.lag1, res.lag1)
    word = choose(way, "more", "less", "about as (within the seeds' spread)")
    return Finding(
        f"At depth {plain.depth} {NORM_WORDS[plain.norm]}, the input gradients of "
        f"{plain.label} are {word} correlated between neighbouring inputs {than(way)} those of "
        f"{res.label}: lag-1 autocorrelation {plain.lag1.text(3)} vs {res.lag1.text(3)}.",
        {"plain_lag1": plain.lag1.mean, "resnet_lag1": res.lag1.mean, "direction": way},
        f"pair:{plain.depth}:{plain.norm}",
    )


def depth_trend(shallow: ShatteredModel, deep: ShatteredModel) -> Finding:
    """Whether a family's lag-1 value falls, rises or neither from its shallowest to its deepest
    net."""
    way = compare(deep.lag1, shallow.lag1)
    word = choose(way, "rises", "falls", "stays (within the seeds' spread)")
    family = "ResNets'" if shallow.residual else "plain nets'"
    return Finding(
        f"{capital(NORM_WORDS[shallow.norm])}, the {family} "
        f"lag-1 autocorrelation {word} with depth: {shallow.lag1.text(3)} at depth "
        f"{shallow.depth}, {deep.lag1.text(3)} at depth {deep.depth}.",
        {"shallow_lag1": shallow.lag1.mean, "deep_lag1": deep.lag1.mean, "direction": way},
        f"depth_trend:{'resnet' if shallow.residual else 'plain'}:{shallow.norm}",
    )


def steeper(shallow: tuple, deep: tuple) -> Finding:
    """Whether the plain nets' lag-1 value falls more with depth than the ResNets'."""
    (plain_s, res_s), (plain_d, res_d) = shallow, deep
    plain_drop = _drop(plain_s, plain_d)
    res_drop = _drop(res_s, res_d)
    way = compare(plain_drop, res_drop)
    word = choose(way, "more", "less", "about as much (within the seeds' spread)")
    return Finding(
        f"From depth {plain_s.depth} to {plain_d.depth} {NORM_WORDS[plain_s.norm]}, the lag-1 "
        f"autocorrelation falls {word} for the plain nets {than(way)} for the ResNets: by "
        f"{plain_drop.text(3)} vs {res_drop.text(3)}.",
        {"plain_drop": plain_drop.mean, "resnet_drop": res_drop.mean, "direction": way},
        f"steeper:{plain_s.norm}",
    )


def _drop(shallow: ShatteredModel, deep: ShatteredModel) -> Spread:
    """The fall of lag 1 from the shallow to the deep net, seed by seed (seeds in common)."""
    deep_by_seed = dict(zip(deep.seeds, deep.lag1.values, strict=True))
    return spread(
        v - deep_by_seed[s]
        for s, v in zip(shallow.seeds, shallow.lag1.values, strict=True)
        if s in deep_by_seed
    )


def _twins(group: Sequence[ShatteredModel], depth: int) -> tuple:
    plain = next((m for m in group if m.depth == depth and not m.residual), None)
    res = next((m for m in group if m.depth == depth and m.residual), None)
    return plain, res


HEADER = ("model", "seeds", "lag-1 autocorrelation")


def table_rows(models: Sequence[ShatteredModel]) -> list[tuple[str, str, str]]:
    return [(m.label, str(len(m.seeds)), m.lag1.text(3)) for m in models]


def draw_figures(records: Sequence[ShatteredGradients], out: Path) -> dict[str, FigureFiles]:
    """The gradients and autocorrelations per norm, and lag 1 against depth (PNG + SVG)."""
    figures = {
        f"line_{norm}": plot_shattered(records, out / f"shattered_{norm}", norm)
        for norm in dict.fromkeys(r.norm for r in records)
    }
    figures["lag1"] = plot_lag1(records, out / "shattered_lag1")
    return figures


def sections(outcome: ShatteredOutcome) -> list[str]:
    """The report's section of the shattered-gradients experiment."""
    s = outcome.settings
    lines = [
        figure_part(files, f"Input gradients along the line and their autocorrelation, {words}.")
        for key, files in outcome.figures.items()
        if key.startswith("line_")
        for words in [NORM_WORDS[key[len("line_") :]]]
    ]
    return [
        report.section(
            f"Shattered gradients ({PAPER})",
            report.paragraph(f"After {CITATION}."),
            report.paragraph(
                f"At initialisation (seeds {', '.join(map(str, s['seeds']))}), the gradient of "
                f"the sum of the logits with respect to the input at {s['points']} points on the "
                f"line between two images of different classes (images {s['line_ends'][0]} and "
                f"{s['line_ends'][1]} of {s['batch']}; BN statistics from that batch). Lag 1 is "
                "the mean cosine between the gradients at neighbouring points: 1 smooth, about 0 "
                "shattered (white noise)."
            ),
            findings_part(outcome.findings),
            *lines,
            figure_part(outcome.figures["lag1"], "Lag-1 autocorrelation against depth."),
            report.table(HEADER, table_rows(outcome.models)),
        )
    ]


def run(
    depths: Sequence[int],
    norms: Sequence[str],
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    points: int = DEFAULT_POINTS,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> ShatteredOutcome:
    """Measure (or read back) every pair of nets, then write the figures, results and report.

    Args:
        depths: depths 6n+2.
        norms: ``"bn"`` and/or ``"none"``.
        seeds: the seeds of the nets' initialisation.
        recipe: its data settings and ``batch_size`` choose the batch; nothing trains.
        out: the experiment's folder.
        points: inputs on the line (at least 8: the autocorrelation runs to a quarter of them).
        jobs: parts computed side by side (one thread each).
        command: the command line that reproduces the experiment.
        log: where progress and the findings go.
    """
    if points < 8:
        raise ConfigError(f"--points must be at least 8; got {points}")
    out, depths, norms = Path(out), cifar_depths(depths), check_norms(norms)
    data = init_data(recipe, seeds[0])
    start, end, ends = line_ends(data)
    args = (start, end, data.images, points)
    parts = init_parts(out, data, depths, norms, seeds, measure, args, {"points": points})
    kept = run_parts(parts, jobs=jobs, threads=THREADS, log=log)
    records = [
        (part.settings["seed"], ShatteredGradients.from_dict(r))
        for part, pair_ in zip(parts, kept, strict=True)
        for r in pair_
    ]
    models = summarise(records)
    found = findings(models)
    figures = draw_figures([r for s, r in records if s == seeds[0]], out)
    settings = {"depths": depths, "norms": norms, "seeds": list(seeds), "points": points}
    settings |= {"line_ends": list(ends), "batch": describe_batch(data), **data.settings}
    files = write_outputs(
        out,
        TITLE,
        command,
        settings=settings,
        models=[m.to_dict() for m in models],
        findings=found,
        sections=sections(ShatteredOutcome(models, found, figures, settings, {})),
        tables_md=[markdown_table(HEADER, table_rows(models))],
        records={"gradients": [{"seed": s, **r.to_dict()} for s, r in records]},
    )
    for f in found:
        log(f.text)
    log(f"report: {files['report.html']}")
    return ShatteredOutcome(models, found, figures, settings, files)
