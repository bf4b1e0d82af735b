"""What every experiment does after training: read the run folders, draw, write the report.

The experiments differ in the runs they plan and the conclusion they draw; the rest (curves
averaged over seeds, gradient norms, layer responses, the table, ``results.json``/``results.md``
and ``report.html``) is here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from resnetlab.analysis import report
from resnetlab.analysis.curves import Curves, load_curves, mean_curves
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.gradients import GradNorms, load_grad_norms
from resnetlab.analysis.plots import curves_alt, plot_error_curves
from resnetlab.analysis.responses import LayerResponses, layer_responses
from resnetlab.data import load_dataset, make_loader
from resnetlab.experiments.results import (
    TABLE_HEADER,
    ModelResult,
    collect,
    environment,
    seeds_phrase,
    table_rows,
    text_table,
    write_results,
)
from resnetlab.experiments.runner import Recipe, RunSpec, config_for, run_all
from resnetlab.train.weights import model_from_checkpoint

RESPONSE_BATCH = 256  # test images in the fixed batch that layer responses are measured on


def data_defaults(data: str) -> dict[str, object]:
    """Recipe defaults that depend on the dataset: no crops or flips for digits (a mirrored
    digit is another symbol or none, and an 8x8 digit padded by 4 loses half of itself)."""
    return {"data.augment": False} if data == "digits" else {}


def by_label(runs: Sequence[RunSpec]) -> dict[str, list[RunSpec]]:
    """The runs grouped by model label, labels in first-seen order."""
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def curves_by_label(out: Path, runs: Sequence[RunSpec]) -> dict[str, Curves]:
    """Each model's error curves, averaged over its seeds."""
    return {
        label: mean_curves([load_curves(out / r.folder) for r in group])
        for label, group in by_label(runs).items()
    }


def grads_by_label(out: Path, runs: Sequence[RunSpec]) -> dict[str, GradNorms]:
    """Each model's weight-gradient norms, the mean over its seeds at each recorded iteration."""
    result = {}
    for label, group in by_label(runs).items():
        grads = [load_grad_norms(out / r.folder) for r in group]
        t = min(len(g.iterations) for g in grads)
        norms = np.mean([g.norms[:, :t] for g in grads], axis=0)
        result[label] = GradNorms(grads[0].layers, grads[0].iterations[:t], norms)
    return result


def responses_per_seed(
    out: Path, runs: Sequence[RunSpec], recipe: Recipe
) -> dict[str, list[LayerResponses]]:
    """Each trained model's layer responses (Figure 7) on the first test images, one per seed.

    The batch is the first ``RESPONSE_BATCH`` images of the test split in file order, normalised
    as in training, so every model sees the same images.
    """
    images = None
    result: dict[str, list[LayerResponses]] = {}
    for label, group in by_label(runs).items():
        for run in group:
            model, _ = model_from_checkpoint(out / run.folder)
            if images is None:
                cfg = config_for(recipe, run)
                test = load_dataset(
                    cfg.data.name,
                    "test",
                    cfg.data.root,
                    image_size=cfg.data.image_size,
                    test_fraction=cfg.data.test_fraction,
                )
                loader = make_loader(test, RESPONSE_BATCH, train=False, workers=0)
                images, _ = next(iter(loader.epoch(0)))  # (B, C, H, W) normalised
            result.setdefault(label, []).append(layer_responses(model, images))
    return result


def mean_responses(per_seed: Mapping[str, Sequence[LayerResponses]]) -> dict[str, LayerResponses]:
    """Each model's layer responses averaged over its seeds."""
    return {
        label: LayerResponses(rs[0].layers, np.mean([r.std for r in rs], axis=0))
        for label, rs in per_seed.items()
    }


def train_and_collect(
    runs: Sequence[RunSpec], recipe: Recipe, out: Path, jobs: int, log: Callable[[str], None]
) -> list[ModelResult]:
    """Train what is not finished, gather the final errors per model and print them."""
    results = collect(run_all(runs, recipe, out, jobs=jobs, log=log))
    log(text_table(results))
    return results


def curves_figure(
    out: Path, runs: Sequence[RunSpec], groups: Mapping[str, Sequence[str]], title: str
) -> FigureFiles:
    """Figure-6-style curves: one panel per group of labels; the PNG and SVG and their alt."""
    curves = curves_by_label(out, runs)
    panels = {name: {label: curves[label] for label in labels} for name, labels in groups.items()}
    return FigureFiles(plot_error_curves(panels, out / "curves", title=title), curves_alt(panels))


def results_section(results: Sequence[ModelResult], heading: str = "Final errors") -> str:
    """The table of final errors as an HTML section."""
    return report.section(
        heading,
        report.table(TABLE_HEADER, table_rows(results)),
        report.paragraph(
            "Measured in eval mode on the whole (un-augmented) train and test sets at the end "
            f"of each run; {seeds_phrase(results)}. "
            "The same numbers are in results.json and in each run's summary.json."
        ),
    )


def describe_recipe(recipe: Recipe, runs: Sequence[RunSpec]) -> str:
    """One sentence: the data, the length, the optimiser and the seeds the runs used."""
    cfg = config_for(recipe, runs[0])
    size = f" at {cfg.data.image_size}x{cfg.data.image_size}" if cfg.data.image_size else ""
    length = f"{cfg.iterations} iterations" if cfg.iterations else f"{cfg.epochs} epochs"
    seeds = ", ".join(map(str, sorted({r.seed for r in runs})))
    augment = "on" if cfg.data.augment else "off"
    return (
        f"Every run: {cfg.data.name}{size}, {length} of batch {cfg.batch_size}, SGD lr "
        f"{cfg.optim.lr:g} (schedule {cfg.schedule.kind}), momentum {cfg.optim.momentum:g}, "
        f"weight decay {cfg.optim.weight_decay:g}, augmentation {augment}, precision "
        f"{cfg.precision}; seeds {seeds}. The full config is under Recipe below."
    )


def recipe_section(recipe: Recipe, run: RunSpec) -> str:
    """The resolved config of one run (the others differ only in model and seed), as YAML."""
    cfg = dataclasses.asdict(config_for(recipe, run))
    return report.section(
        "Recipe",
        report.paragraph(
            f"The resolved config of {run.folder}; the other runs differ only in model and seed."
        ),
        report.preformatted(yaml.safe_dump(cfg, sort_keys=False)),
    )


def finish(
    out: Path,
    title: str,
    results: Sequence[ModelResult],
    command: str,
    parts: Sequence[str],
    *,
    lead: Sequence[str] = (),
    extra: Mapping[str, object] | None = None,
) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``report.html`` into ``out``.

    Args:
        out: the experiment's folder.
        title: the experiment's title.
        results: the final errors per model.
        command: the command that reproduces the experiment.
        parts: the experiment's own report sections (figures), shown after the table.
        lead: sections shown before the table (the conclusion).
        extra: more fields for ``results.json`` (the verdict).

    Returns:
        ``{"results.json": ..., "results.md": ..., "report.html": ...}``.
    """
    env = environment()
    json_path, md_path = write_results(out, title, results, command, env, extra)
    html = report.write_report(
        out / "report.html",
        title,
        [*lead, results_section(results), *parts, report.environment_section(env, command)],
    )
    return {"results.json": json_path, "results.md": md_path, "report.html": html}
