"""``resnetlab experiment shortcuts``: shortcut options A, B and C at one depth (§3.3, Table 3).

The paper compares the options on ImageNet with ResNet-34 (top-1 error, 10-crop: A 25.03,
B 24.52, C 24.19) and concludes that projections are not essential: the differences are small,
and B's and C's gains come from the few (B) or many (C) extra parameters. Here the three options
train with one recipe on CIFAR-sized data (the CIFAR ResNets of §4.2 with each option).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from resnetlab.analysis import report
from resnetlab.errors import ConfigError
from resnetlab.experiments.common import (
    curves_figure,
    data_defaults,
    describe_recipe,
    finish,
    recipe_section,
    train_and_collect,
)
from resnetlab.experiments.runner import Recipe, RunSpec, fit_preset_to_length
from resnetlab.models import check_cifar_depth
from resnetlab.nn.shortcuts import SHORTCUT_OPTIONS
from resnetlab.train.weights import model_from_checkpoint

TITLE = "Shortcut options A, B, C (Table 3) on CIFAR-sized data"
PAPER_TABLE3 = {"A": 25.03, "B": 24.52, "C": 24.19}  # ResNet-34, ImageNet val top-1 %, 10-crop
PRESET = "cifar-paper"


def defaults(data: str) -> tuple[str | None, dict]:
    """The experiment's (preset, recipe defaults): the paper's CIFAR recipe."""
    return PRESET, data_defaults(data)


def plan(
    depth: int, seeds: Sequence[int], options: Sequence[str] = SHORTCUT_OPTIONS
) -> list[RunSpec]:
    """One ResNet of ``depth`` per shortcut option, every seed of each."""
    check_cifar_depth(depth, "--depth")
    for option in options:
        if option not in SHORTCUT_OPTIONS:
            raise ConfigError(f"--options: {option!r} is not one of A, B, C")
    return [
        RunSpec(
            f"resnet{depth}-{option}",
            seed,
            {"model.name": "cifar_resnet", "model.overrides": {"depth": depth, "shortcut": option}},
        )
        for option in dict.fromkeys(options)
        for seed in seeds
    ]


def run(
    depth: int,
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    options: Sequence[str] = SHORTCUT_OPTIONS,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Train each option (skipping finished runs) and write the table, curves and report.

    Returns:
        ``{"results": [ModelResult], "params": {label: count}, "files": {name: path}}``.
    """
    out = Path(out)
    runs = plan(depth, seeds, options)
    recipe = fit_preset_to_length(recipe, runs[0])
    results = train_and_collect(runs, recipe, out, jobs, log)
    params = {}
    for r in results:
        model, _ = model_from_checkpoint(out / r.folders[0])
        params[r.label] = sum(p.numel() for p in model.parameters())
    curves = curves_figure(out, runs, {"": [r.label for r in results]}, title=TITLE)
    rows = [
        (
            r.label,
            f"{params[r.label]:,}",
            f"{PAPER_TABLE3[r.label.rsplit('-', 1)[1]]:.2f}",
        )
        for r in results
    ]
    parts = [
        report.section(
            "Parameters",
            report.table(("model", "parameters", "paper Table 3 top-1 error (%)"), rows),
            report.paragraph(
                "The paper's numbers are ResNet-34 on ImageNet (10-crop top-1 error): they show "
                "the ordering A > B > C and how small the gaps are, not values to match here."
            ),
        ),
        report.section("Training curves", report.figure(curves, "Mean over seeds.")),
        recipe_section(recipe, runs[0]),
    ]
    lead = [report.paragraph(describe_recipe(recipe, runs))]
    files = finish(out, TITLE, results, command, parts, lead=lead, extra={"parameters": params})
    log(f"report: {files['report.html']}")
    return {"results": results, "params": params, "files": files}
