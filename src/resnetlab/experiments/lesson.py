"""``resnetlab experiment lesson``: why residual learning works, argued with this run's numbers.

The report that ``make demo`` ends with. It follows the argument of He et al. 2015
("Deep Residual Learning for Image Recognition", arXiv:1512.03385) in six sections, each claim
next to its evidence from this run:

1. the problem: a deeper plain net should do no worse, yet it trains worse (Figure 6);
2. vanishing gradients, measured: the signal at initialisation (``analysis.signal``, plain and
   residual, with and without BN) and the gradient flow during training, against §4.1;
3. the residual block ``H(x) = F(x) + x``, drawn from the model's own modules, with the shortcut
   options A, B and C;
4. why an identity is easy: the demo's trained shallow ResNet deepened with zero-initialised
   blocks equals itself bit for bit, and the identity experiment (at a small size) shows the
   deepened net never ending worse;
5. beyond the paper, where those analyses ran (``experiments.beyond``);
6. what this run does not show.

It trains what the degradation and identity experiments train (their folders are
``<out>/degradation`` and ``<out>/identity``, each with its own report), so a rerun skips every
finished run, and measures the rest in seconds. Every sentence that states a direction comes from
``claims``; ``results.json`` keeps each with its numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.plots_signal import plot_signal_profiles
from resnetlab.analysis.records import write_json
from resnetlab.analysis.signal import SignalProfile, signal_study
from resnetlab.data import load_dataset, make_loader
from resnetlab.errors import ConfigError
from resnetlab.experiments import beyond as beyond_part
from resnetlab.experiments import degradation, identity, lesson_sections
from resnetlab.experiments.lesson_facts import Facts
from resnetlab.experiments.results import environment
from resnetlab.experiments.runner import Recipe, RunSpec, cifar_depths, config_for
from resnetlab.models import build_model
from resnetlab.models.resnet import cifar_resnet
from resnetlab.train.weights import model_from_checkpoint

TITLE = "Why residual learning works: the argument of He et al. 2015, measured"
IDENTITY_DEPTHS = (8, 20)  # small: the identity part costs a few seconds of the demo
IDENTITY_ITERATIONS = 60
SIGNAL_BATCH = 32  # training images of the one batch the signal at initialisation is measured on
ONE_SEED = (
    "This lesson ran one seed ({seed}): its numbers show no spread over seeds, and a finding "
    "cannot be told from the luck of the seed; --seeds 3 runs three."
)
SUMMARY = ("degradation", "fix", "paper_gradients", "never_worse")  # the claims printed at the end


def defaults(data: str) -> tuple[str | None, dict]:
    """The lesson's (preset, recipe defaults): those of the degradation experiment."""
    return degradation.defaults(data)


def identity_recipe(recipe: Recipe, iterations: int) -> Recipe:
    """The recipe of the identity part: the lesson's, ``iterations`` long (the user's length
    options are the degradation part's)."""
    if iterations < 1:
        raise ConfigError(f"--identity-iterations must be at least 1; got {iterations}")
    values = {k: v for k, v in recipe.values.items() if k not in ("iterations", "epochs")}
    defaults = {**recipe.defaults, "iterations": iterations}
    return dataclasses.replace(recipe, defaults=defaults, values=values)


def run(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    shallow: int = IDENTITY_DEPTHS[0],
    deep: int = IDENTITY_DEPTHS[1],
    identity_iterations: int = IDENTITY_ITERATIONS,
    beyond: Sequence[str | Path] = beyond_part.DEFAULT_FOLDERS,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or reuse) the degradation and identity runs, measure, and write the lesson.

    Args:
        depths: the degradation part's depths 6n+2, at least two (``[20, 56]``).
        seeds: the seeds of every model of both parts.
        recipe: the degradation part's recipe; the identity part takes it at its own length.
        out: the lesson's folder: ``report.html``, ``results.json``, the figures, and the
            parts' folders ``degradation/`` and ``identity/``.
        shallow: the identity part's shallow ResNet.
        deep: the identity part's deepened ResNet.
        identity_iterations: the length of each phase of the identity part.
        beyond: folders whose ``results.json`` may hold shattered-gradient, lesion or
            landscape records (section 5).
        jobs: runs trained side by side.
        command: the command line that reproduces the lesson.
        log: where progress goes.

    Returns:
        ``{"claims": [Claim], "sections": [heading], "files": {name: path}}``.
    """
    out, depths = Path(out), cifar_depths(depths)
    if len(depths) < 2:
        raise ConfigError("the lesson compares depths: give --depths at least two (20 56)")
    identity.check_depths(shallow, deep)
    ident_recipe = identity_recipe(recipe, identity_iterations)  # refused before any training
    found, missing = beyond_part.read_folders(beyond)
    part = degradation.run(
        depths, seeds, recipe, out / "degradation", jobs=jobs, log=log, command=command
    )
    ident = identity.run(
        shallow,
        deep,
        seeds,
        ident_recipe,
        out / "identity",
        jobs=jobs,
        log=log,
        command=command,
    )
    cfg = config_for(part["recipe"], part["runs"][0])
    profiles, signal_figure, counts, train_images = measure_signal(cfg, depths, out)
    deepened = deepened_check(out / "degradation", part["runs"], depths, cfg)
    env = environment()
    facts = Facts(
        depths=list(depths),
        cfg=cfg,
        degradation=part,
        identity=ident,
        profiles=profiles,
        signal_figure=signal_figure,
        weights=counts,
        train_images=train_images,
        signal_images=SIGNAL_BATCH,
        deepened=deepened,
        beyond=(found, missing),
        out=out,
        command=command,
        environment=env,
    )
    sections, made = lesson_sections.build(facts)
    html = report.write_report(out / "report.html", TITLE, sections)
    record = {
        "title": TITLE,
        "command": command,
        "environment": env,
        "seeds": list(seeds),
        "sections": lesson_sections.HEADINGS,
        "claims": [c.to_dict() for c in made],
        "signal": [p.to_dict() for p in profiles],
        "degradation": str(out / "degradation" / "results.json"),
        "identity": str(out / "identity" / "results.json"),
        "beyond": [str(f.path) for f in found],
    }
    json_path = write_json(out / "results.json", record)
    for c in made:
        if c.kind in SUMMARY:
            log(c.text)
    if len(set(seeds)) == 1:
        log(ONE_SEED.format(seed=seeds[0]))
    log(f"report: {html}")
    return {
        "claims": made,
        "sections": lesson_sections.HEADINGS,
        "files": {"report.html": html, "results.json": json_path},
    }


def measure_signal(
    cfg, depths: Sequence[int], out: Path
) -> tuple[list[SignalProfile], FigureFiles, dict[str, dict[str, int]], int]:
    """The signal at initialisation of plain nets and ResNets of ``depths``, with BN and
    without, on one batch of the run's training images; its figure; each net's weight counts;
    the number of training images."""
    d = cfg.data
    train = load_dataset(
        d.name, "train", d.root, image_size=d.image_size, test_fraction=d.test_fraction
    )
    loader = make_loader(train, SIGNAL_BATCH, train=False, workers=0)
    images, labels = next(iter(loader.epoch(0)))  # (B, C, H, W) normalised, file order
    classes = train.info.num_classes
    profiles = signal_study(images, labels, depths, ("bn", "none"), num_classes=classes)
    write_json(out / "signal.json", [p.to_dict() for p in profiles])
    figure = plot_signal_profiles(profiles, out / "signal_profiles")
    counts = {}
    for depth in depths:
        for residual in (False, True):
            model = cifar_resnet(depth, classes, residual=residual, in_channels=images.shape[1])
            counts[f"{'resnet' if residual else 'plain'}{depth}"] = weight_counts(model)
    return profiles, figure, counts, len(train)


def weight_counts(model: torch.nn.Module) -> dict[str, int]:
    """Each parameter's number of weights, by name (``conv1.weight``: 144)."""
    return {name: p.numel() for name, p in model.named_parameters()}


def deepened_check(folder: Path, runs: Sequence[RunSpec], depths: Sequence[int], cfg) -> dict:
    """The demo's own trained shallow ResNets, deepened to the deepest depth with
    zero-initialised blocks (``identity.deepen``): do they give the same outputs, bit for bit,
    on the whole test split?

    Returns:
        ``{"shallow", "deep", "identical": bool (every seed), "images": int, "seeds": [..]}``.
    """
    shallow, deep = min(depths), max(depths)
    d = cfg.data
    test = load_dataset(
        d.name, "test", d.root, image_size=d.image_size, test_fraction=d.test_fraction
    )
    batches = list(make_loader(test, 256, train=False, workers=0).epoch(0))
    identical, seeds = True, []
    for r in (r for r in runs if r.label == f"resnet{shallow}"):
        model, ckpt = model_from_checkpoint(folder / r.folder)
        m = ckpt["model"]
        torch.manual_seed(r.seed)  # the added blocks' convs: seeded like a run's init
        overrides = {**m["overrides"], "depth": deep, "zero_init_residual": True}
        deepened = identity.deepen(
            model, build_model(m["name"], m["num_classes"], m["in_channels"], overrides)
        ).eval()
        with torch.no_grad():
            identical &= all(torch.equal(model(x), deepened(x)) for x, _ in batches)
        seeds.append(r.seed)
    return {
        "shallow": f"resnet{shallow}",
        "deep": f"resnet{deep}",
        "identical": identical,
        "images": len(test),
        "seeds": seeds,
    }
