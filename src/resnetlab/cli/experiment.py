"""``resnetlab experiment NAME``: the experiments that measure the paper's argument.

Every experiment takes the same recipe options (data, length, seeds, ``--set``); a finished run
folder is skipped and an unfinished one resumed, so an interrupted experiment continues where it
stopped when the same command runs again.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from typing import Any

from resnetlab.cli.analyses import ANALYSES, SHOWN, add_analysis_arguments, run_analysis
from resnetlab.cli.options import add_recipe_arguments, config_flags
from resnetlab.errors import ConfigError
from resnetlab.experiments.runner import Recipe
from resnetlab.outputs import check_output, check_output_dir

# name -> (module, default dataset, one line of help)
EXPERIMENTS = {
    "degradation": (
        "resnetlab.experiments.degradation",
        "digits",
        "plain vs residual nets at several depths: curves, gradient flow, layer responses",
    ),
    "cifar-table": (
        "resnetlab.experiments.cifar_table",
        "cifar10",
        "the paper's Table 6: CIFAR ResNets by depth, rows written into RESULTS.md",
    ),
    "shortcuts": (
        "resnetlab.experiments.shortcuts",
        "cifar10",
        "shortcut options A, B and C at one depth (the paper's Table 3)",
    ),
    "identity": (
        "resnetlab.experiments.identity",
        "digits",
        "a trained shallow ResNet plus zero-initialised blocks: the deeper net never ends worse",
    ),
    "lesson": (
        "resnetlab.experiments.lesson",
        "digits",
        "why residual learning works: degradation, gradients, the block, the identity (make demo)",
    ),
    **ANALYSES,
}


# Shown in the recorded command even at their defaults: they say what was trained on what.
ALWAYS_SHOWN = ("depths", "depth", "options", "shallow", "deep", "data", *SHOWN)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="run an experiment of the paper (degradation, ...) and write its report",
        description="Run an experiment: train its runs with one recipe (skipping finished ones), "
        "or measure nets (signal, shattered at initialisation; lesion, landscape on trained nets), "
        "then write results.json, results.md, figures (PNG and SVG) and report.html to --out.",
    )
    experiments = p.add_subparsers(dest="experiment", metavar="NAME", parser_class=type(p))
    experiments.required = True
    for name, (_, data, help_text) in EXPERIMENTS.items():
        q = experiments.add_parser(name, help=help_text, description=help_text)
        if name in ANALYSES:
            add_analysis_arguments(q, name)
        else:
            _add_model_arguments(q, name)
        _add_recipe_arguments(q, name, data)
        q.set_defaults(func=run_experiment, experiment_parser=q)


def _add_model_arguments(q: argparse.ArgumentParser, name: str) -> None:
    """The options that say which models an experiment trains."""
    if name in ("degradation", "cifar-table", "lesson"):
        default = [20, 32, 44, 56, 110] if name == "cifar-table" else [20, 56]
        q.add_argument(
            "--depths",
            nargs="+",
            type=int,
            default=default,
            metavar="D",
            help=f"depths 6n+2 (default: {' '.join(map(str, default))})",
        )
    if name == "cifar-table":
        q.add_argument("--plain", action="store_true", help="also train the plain twins")
        q.add_argument(
            "--results-md",
            default="RESULTS.md",
            metavar="PATH",
            help="Markdown file whose marked block receives the table (default: RESULTS.md)",
        )
    if name == "shortcuts":
        q.add_argument("--depth", type=int, default=20, metavar="D", help="depth 6n+2 (20)")
        q.add_argument(
            "--options", nargs="+", default=["A", "B", "C"], metavar="X", help="A B C (all)"
        )
    if name == "identity":
        q.add_argument("--shallow", type=int, default=20, metavar="D", help="shallow depth (20)")
        q.add_argument("--deep", type=int, default=56, metavar="D", help="deep depth (56)")
    if name == "lesson":
        _add_lesson_arguments(q)


def _add_lesson_arguments(q: argparse.ArgumentParser) -> None:
    """The lesson's identity part and the folders its section 5 reads."""
    from resnetlab.experiments import beyond, lesson

    shallow, deep = lesson.IDENTITY_DEPTHS
    q.add_argument(
        "--shallow", type=int, default=shallow, metavar="D", help=f"identity part: ({shallow})"
    )
    q.add_argument("--deep", type=int, default=deep, metavar="D", help=f"identity part: ({deep})")
    q.add_argument(
        "--identity-iterations",
        type=int,
        default=lesson.IDENTITY_ITERATIONS,
        metavar="N",
        help=f"length of each phase of the identity part ({lesson.IDENTITY_ITERATIONS})",
    )
    q.add_argument(
        "--beyond",
        nargs="+",
        default=list(beyond.DEFAULT_FOLDERS),
        metavar="DIR",
        help="folders whose results.json holds shattered, lesion or landscape records "
        f"(default: {' '.join(beyond.DEFAULT_FOLDERS)})",
    )


def _add_recipe_arguments(q: argparse.ArgumentParser, name: str, data: str) -> None:
    add_recipe_arguments(q, data=data, flags=("image_size",), config_file=False)
    runs = q.add_argument_group("runs")
    runs.add_argument("--seeds", type=int, default=1, metavar="S", help="seeds per model (1)")
    runs.add_argument("--first-seed", type=int, default=0, metavar="K", help="seeds K..K+S-1")
    runs.add_argument(
        "--jobs", type=int, default=1, metavar="J", help="runs trained side by side (1)"
    )
    runs.add_argument("--out", default=f"runs/{name}", metavar="DIR", help="the output folder")


def recipe_from_args(
    args: argparse.Namespace, defaults: tuple[str | None, dict[str, Any]]
) -> Recipe:
    """The ``Recipe`` of the parsed options over the experiment's (preset, defaults)."""
    preset, values_default = defaults
    preset = args.preset if args.preset is not None else preset
    return Recipe(preset, values_default, tuple(args.sets), config_flags(args))


def seeds_from_args(args: argparse.Namespace) -> list[int]:
    """``--first-seed K --seeds S`` -> ``[K, ..., K+S-1]``."""
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1; got {args.seeds}")
    if args.first_seed < 0:
        raise ConfigError(f"--first-seed must be at least 0; got {args.first_seed}")
    return list(range(args.first_seed, args.first_seed + args.seeds))


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this experiment: the data, the models, and every other
    option that differs from its default, in the parser's order."""
    parser: argparse.ArgumentParser = args.experiment_parser
    words = ["resnetlab", "experiment", args.experiment]
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest == "help":
            continue
        if value is None or (value == action.default and action.dest not in ALWAYS_SHOWN):
            continue  # None: an option not given and without a value ("--runs None" is no command)
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            words.append(flag)
        elif action.dest == "sets":
            for item in value:
                words += [flag, item]
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def run_experiment(args: argparse.Namespace) -> int:
    check_output_dir(args.out, option="--out")  # before any training
    if getattr(args, "results_md", None) is not None:
        check_output(args.results_md, option="--results-md")
    module = importlib.import_module(EXPERIMENTS[args.experiment][0])
    recipe = recipe_from_args(args, module.defaults(args.data))
    seeds = seeds_from_args(args)
    common = {"jobs": args.jobs, "command": command_line(args)}
    name = args.experiment
    if name in ANALYSES:
        run_analysis(args, module, recipe, seeds, common)
    elif name == "degradation":
        module.run(args.depths, seeds, recipe, args.out, **common)
    elif name == "cifar-table":
        module.run(
            args.depths,
            seeds,
            recipe,
            args.out,
            plain=args.plain,
            results_md=args.results_md,
            **common,
        )
    elif name == "shortcuts":
        module.run(args.depth, seeds, recipe, args.out, options=args.options, **common)
    elif name == "lesson":
        module.run(
            args.depths,
            seeds,
            recipe,
            args.out,
            shallow=args.shallow,
            deep=args.deep,
            identity_iterations=args.identity_iterations,
            beyond=args.beyond,
            **common,
        )
    elif name == "identity":
        module.run(args.shallow, args.deep, seeds, recipe, args.out, **common)
    return 0
