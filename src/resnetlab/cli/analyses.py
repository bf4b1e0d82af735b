"""The options of the analysis experiments (``signal``, ``shattered``, ``lesion``, ``landscape``)
and how ``resnetlab experiment NAME`` runs them.

``signal`` and ``shattered`` train nothing: the recipe options choose their data and batch
(``--data``, ``--image-size``, ``--batch-size``, ``--set data.*``), and the options of training
alone are refused rather than ignored. ``lesion`` and ``landscape`` train their nets with the recipe
unless ``--runs`` gives trained ones.
"""

from __future__ import annotations

import argparse
from typing import Any

from resnetlab.errors import ConfigError
from resnetlab.experiments.runner import Recipe, cifar_depths
from resnetlab.train.checkpoint import resolve_checkpoint

# name -> (module, default dataset, one line of help)
ANALYSES = {
    "signal": (
        "resnetlab.experiments.signal",
        "digits",
        "activations and gradients at initialisation, plain vs ResNet, with and without BN",
    ),
    "shattered": (
        "resnetlab.experiments.shattered",
        "digits",
        "shattered gradients at initialisation (Balduzzi et al. 2017): autocorrelation by depth",
    ),
    "lesion": (
        "resnetlab.experiments.lesion",
        "digits",
        "delete and swap blocks of trained nets, and the path view (Veit et al. 2016)",
    ),
    "landscape": (
        "resnetlab.experiments.landscape",
        "digits",
        "loss surfaces around trained weights on filter-normalised directions (Li et al. 2018)",
    ),
}
AT_INIT = ("signal", "shattered")
# Options of training alone: refused where nothing trains (at initialisation, or with --runs).
TRAINING_ONLY = ("iterations", "epochs", "lr", "preset", "device")
TRAINED_DATA = ("batch_size", "image_size", "data_dir", "sets")  # --runs: each net's own data
SHOWN = ("norms",)  # in the recorded command even at its default


# The defaults of each experiment's module, written out so that building the parser imports none
# of them (test_cli_analyses checks that they agree).
DEPTHS = {
    "signal": (8, 20, 56, 110),
    "shattered": (8, 20, 56, 110),
    "lesion": (20, 56),
    "landscape": (56,),
}
NORMS = {"signal": ("bn", "none"), "shattered": ("bn",)}
POINTS = 256
LESION = {"test_images": 1000, "draws": 5, "path_samples": 8, "path_images": 64}
LANDSCAPE = {"grid": 21, "span": 1.0, "dims": 2, "subset": 1024}
HELP = {
    "test_images": "test images the errors are measured on",
    "draws": "random draws per k",
    "path_samples": "sampled paths per length",
    "path_images": "training images of the path view",
    "grid": "points per axis, odd",
    "span": "coordinates from -R to R",
    "dims": "random directions, 1 or 2",
    "subset": "training images every point is evaluated on",
}


def add_analysis_arguments(q: argparse.ArgumentParser, name: str) -> None:
    """The options that say which nets an analysis measures, and how."""
    g = q.add_argument_group(name)
    depths = DEPTHS[name]
    g.add_argument(
        "--depths",
        nargs="+",
        type=int,
        default=list(depths),
        metavar="D",
        help=f"depths 6n+2 ({' '.join(map(str, depths))})",
    )
    if name in NORMS:
        g.add_argument(
            "--norms",
            nargs="+",
            default=list(NORMS[name]),
            metavar="N",
            help=f"bn and/or none ({' '.join(NORMS[name])})",
        )
    if name == "shattered":
        g.add_argument(
            "--points", type=int, default=POINTS, metavar="N", help="inputs on the line (256)"
        )
    if name in ("lesion", "landscape"):
        g.add_argument(
            "--runs",
            nargs="+",
            default=None,
            metavar="RUN",
            help="trained run folders or checkpoints to measure, instead of training --depths",
        )
    for dest, value in {"lesion": LESION, "landscape": LANDSCAPE}.get(name, {}).items():
        g.add_argument(
            "--" + dest.replace("_", "-"),
            type=type(value),
            default=value,
            metavar="N" if dest != "span" else "R",
            help=f"{HELP[dest]} ({value:g})",
        )


def run_analysis(
    args: argparse.Namespace, module: Any, recipe: Recipe, seeds: list[int], common: dict
) -> None:
    """Run the analysis ``args.experiment`` (its module given) with the parsed options."""
    name = args.experiment
    if name in AT_INIT:
        _refuse_unused(args, f"{name} trains nothing (it measures nets at initialisation)")
        extra = {"points": args.points} if name == "shattered" else {}
        module.run(args.depths, args.norms, seeds, recipe, args.out, **extra, **common)
        return
    if args.runs:
        for run in args.runs:  # a missing or empty run folder is the first thing to name
            resolve_checkpoint(run)
        _refuse_unused(args, "--runs gives trained nets, each measured on its own data")
    cifar_depths(args.depths)  # checked with --runs too: a wrong value is never passed over
    if name == "lesion":
        settings = module.LesionSettings(**{k: getattr(args, k) for k in LESION})
    else:
        settings = module.LandscapeSettings(**{k: getattr(args, k) for k in LANDSCAPE})
    module.run(args.depths, seeds, recipe, args.out, runs=args.runs, settings=settings, **common)


def _refuse_unused(args: argparse.Namespace, why: str) -> None:
    """Raise ``ConfigError`` for the first option given that would have no effect."""
    unused = TRAINING_ONLY + (TRAINED_DATA if getattr(args, "runs", None) else ())
    for dest in unused:
        if getattr(args, dest, None) not in (None, []):
            flag = "--" + {"sets": "set"}.get(dest, dest).replace("_", "-")
            raise ConfigError(f"{flag}: {why}")
