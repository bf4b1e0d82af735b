"""``resnetlab experiment identity``: added residual blocks can learn the identity (§1, §3.1).

The paper's thought experiment: a deeper model built from a shallower one by adding layers that
are identity mappings should have no higher training error than the shallower one. With
residual blocks this construction is exact: a block whose last BN scale is zero computes
``relu(x + 0) = x`` (its input is already the output of a ReLU). So:

1. train the shallow ResNet (``resnet<s>``) for the recipe's length;
2. build the deep ResNet (``resnet<d>``), copy every shallow weight into the blocks they match (the
   first blocks of each stage, the stem and the classifier), and start the added blocks at zero
   (``zero_init_residual``): at this point it computes exactly the shallow net's function;
3. train it for the same length again, and, as the control, the shallow net for the same length
   from the same weights (``resnet<s>-continued``).

The claim holds when, for every seed, the deep net's final training error is no higher than the
shallow net's at the end of step 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from resnetlab.analysis import report
from resnetlab.analysis.curves import Curves, load_curves, mean_curves
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.plots import curves_alt, plot_error_curves
from resnetlab.data import load_dataset, make_loader
from resnetlab.errors import ConfigError
from resnetlab.experiments import degradation
from resnetlab.experiments.common import (
    describe_recipe,
    finish,
    recipe_section,
    train_and_collect,
)
from resnetlab.experiments.results import ModelResult
from resnetlab.experiments.runner import Recipe, RunSpec, config_for
from resnetlab.models import build_model, check_cifar_depth
from resnetlab.train.weights import model_from_checkpoint, save_weights

TITLE = "Identity: a deeper ResNet made of a trained shallow one plus zero-initialised blocks"


def defaults(data: str) -> tuple[str | None, dict]:
    """The experiment's (preset, recipe defaults): those of the degradation experiment."""
    return degradation.defaults(data)


def deepen(shallow: nn.Module, deep: nn.Module) -> nn.Module:
    """Copy ``shallow``'s weights into ``deep``, whose other blocks must start as identities.

    Every parameter and buffer name of ``shallow`` must exist in ``deep`` with the same shape
    (the CIFAR nets name block ``j`` of stage ``i`` ``layer<i>.<j>``: a net with more blocks per
    stage holds all the names of one with fewer). ``deep`` should be built with
    ``zero_init_residual=True`` so that its added blocks compute the identity.

    Returns:
        ``deep``, with the shallow weights in place.

    Raises:
        ConfigError: the two nets do not nest.
    """
    shallow_state, deep_state = shallow.state_dict(), deep.state_dict()
    for name, tensor in shallow_state.items():
        if name not in deep_state or deep_state[name].shape != tensor.shape:
            raise ConfigError(f"the deep net has no {name} of shape {tuple(tensor.shape)}")
    deep.load_state_dict({**deep_state, **shallow_state})
    return deep


@dataclass(frozen=True)
class Labels:
    """The three models of the experiment."""

    shallow: str
    continued: str
    deep: str


def labels(shallow: int, deep: int) -> Labels:
    return Labels(f"resnet{shallow}", f"resnet{shallow}-continued", f"resnet{deep}-from-{shallow}")


def check_depths(shallow: int, deep: int) -> None:
    """Both 6n+2, the deep one deeper."""
    for name, d in (("--shallow", shallow), ("--deep", deep)):
        check_cifar_depth(d, name)
    if deep <= shallow:
        raise ConfigError(f"--deep ({deep}) must be larger than --shallow ({shallow})")


def run(
    shallow: int,
    deep: int,
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Train the three models for every seed and write the table, curves and report.

    Args:
        shallow: depth of the shallow ResNet (6n+2).
        deep: depth of the deep ResNet (6n+2, larger).
        seeds: the seeds.
        recipe: the recipe every training phase uses.
        out: the experiment's folder.
        jobs: runs trained side by side.
        command: the command line that reproduces the experiment.
        log: where progress and results go.

    Returns:
        ``{"results": [ModelResult], "holds": bool, "identical_at_start": bool, "labels":
        Labels, "figure": FigureFiles (the curves), "files": ...}``.
    """
    check_depths(shallow, deep)
    out, names = Path(out), labels(shallow, deep)
    values = {"model.name": "cifar_resnet", "model.overrides": {"depth": shallow}}
    first = [RunSpec(names.shallow, s, values) for s in seeds]
    phase1 = train_and_collect(first, recipe, out, jobs, log)

    second, identical = _phase2(out, first, deep, recipe, names)
    phase2 = train_and_collect(second, recipe, out, jobs, log)
    results = [*phase1, *phase2]
    holds, lines = judge(results, names, identical)
    for line in lines:
        log(line)

    panels = {"training error (dashed) and test error (solid)": _joined_curves(out, first, second)}
    figure = FigureFiles(plot_error_curves(panels, out / "curves"), curves_alt(panels))
    parts = [
        report.section(
            "Training curves",
            report.figure(figure, "Phase 2 starts where phase 1 ends; mean over seeds."),
        ),
        recipe_section(recipe, first[0]),
    ]
    lead = [
        report.paragraph(f"Phases 1 and 2 use one recipe. {describe_recipe(recipe, first)}"),
        report.section("Verdict", *(report.paragraph(line) for line in lines)),
    ]
    extra = {"holds": holds, "identical_at_start": identical, "lines": lines}
    files = finish(out, TITLE, results, command, parts, lead=lead, extra=extra)
    log(f"report: {files['report.html']}")
    return {
        "results": results,
        "holds": holds,
        "identical_at_start": identical,
        "labels": names,
        "figure": figure,
        "files": files,
    }


def judge(results: Sequence[ModelResult], names: Labels, identical: bool) -> tuple[bool, list[str]]:
    """Whether the deep net ends no worse than the shallow one for every seed, with the lines
    that say so."""
    by = {r.label: r for r in results}
    s, c, d = by[names.shallow], by[names.continued], by[names.deep]
    holds = all(dt <= st for dt, st in zip(d.train_errors, s.train_errors, strict=True))
    pairs = ", ".join(
        f"seed {k}: {100 * dt:.2f}% vs {100 * st:.2f}%"
        for k, dt, st in zip(d.seeds, d.train_errors, s.train_errors, strict=True)
    )
    lines = [
        f"identical at the start of phase 2: {'yes' if identical else 'NO'} ({names.deep} and "
        f"{names.shallow} give the same outputs on the first test batch)",
        f"deep net never ends worse: {'yes' if holds else 'no'} (final training error "
        f"{names.deep} vs {names.shallow}, {pairs})",
        f"control: {names.continued} ends at {100 * c.train_mean:.2f}% training error, "
        f"{names.deep} at {100 * d.train_mean:.2f}% (mean over seeds)",
    ]
    return holds, lines


def _phase2(
    out: Path, first: Sequence[RunSpec], deep: int, recipe: Recipe, names: Labels
) -> tuple[list[RunSpec], bool]:
    """The control and deep runs that start from each trained shallow run, and whether every
    deep start computes exactly its shallow net's function."""
    second, identical = [], True
    for run1 in first:
        weights, same = _deep_start(out, run1, deep, recipe)
        identical &= same
        second.append(
            RunSpec(names.continued, run1.seed, {**run1.values, "model.weights": _last(out, run1)})
        )
        values = {
            "model.name": "cifar_resnet",
            "model.overrides": {"depth": deep, "zero_init_residual": True},
            "model.weights": str(weights),
        }
        second.append(RunSpec(names.deep, run1.seed, values, cost=deep))
    return second, identical


def _last(out: Path, run: RunSpec) -> str:
    return str(out / run.folder / "checkpoints" / "last.pt")


def _deep_start(out: Path, run1: RunSpec, deep: int, recipe: Recipe) -> tuple[Path, bool]:
    """Build the deep net from the trained shallow one, save its weights, and check that the two
    give the same outputs on a test batch."""
    path = out / "init" / f"resnet{deep}-from-{run1.folder}.safetensors"
    shallow, ckpt = model_from_checkpoint(out / run1.folder)
    m = ckpt["model"]
    torch.manual_seed(run1.seed)  # the added blocks' convs: seeded like any run's init
    deep_net = build_model(
        m["name"],
        m["num_classes"],
        m["in_channels"],
        {**m["overrides"], "depth": deep, "zero_init_residual": True},
    )
    deepen(shallow, deep_net).eval()
    if not path.exists():  # a rerun keeps the file the deep run started from
        path.parent.mkdir(parents=True, exist_ok=True)
        save_weights(deep_net, path)
    cfg = config_for(recipe, run1)
    d = cfg.data
    test = load_dataset(
        d.name, "test", d.root, image_size=d.image_size, test_fraction=d.test_fraction
    )
    images, _ = next(iter(make_loader(test, 256, train=False, workers=0).epoch(0)))
    with torch.no_grad():
        same = torch.equal(shallow(images), deep_net(images))
    return path, same


def _joined_curves(
    out: Path, first: Sequence[RunSpec], second: Sequence[RunSpec]
) -> dict[str, Curves]:
    """Phase-1 curves as they are; phase-2 curves shifted to start where phase 1 ended."""
    groups: dict[str, list[Curves]] = {}
    for run in [*first, *second]:
        groups.setdefault(run.label, []).append(load_curves(out / run.folder))
    curves = {label: mean_curves(cs) for label, cs in groups.items()}
    c = curves[first[0].label]
    start = int(max(c.train_iterations.max(initial=0), c.eval_iterations.max(initial=0)))
    for label in curves:
        if label != first[0].label:
            c = curves[label]
            curves[label] = replace(
                c,
                train_iterations=c.train_iterations + start,
                eval_iterations=c.eval_iterations + start,
            )
    return curves
