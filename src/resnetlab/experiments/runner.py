"""Running the training runs of an experiment: one recipe, many models and seeds, via ``fit``.

An experiment is a list of ``RunSpec``s (a model label, a seed, and the config values that make
the model) trained with one ``Recipe`` (a preset plus the values every run shares). Each run
writes its own folder ``<out>/<label>-seed<k>/`` through ``resnetlab.train.fit``. A run whose
folder already holds ``summary.json`` is finished and skipped (after checking that it was made
with the same config); a folder with checkpoints but no summary is resumed by ``fit``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resnetlab.analysis.records import read_json
from resnetlab.errors import ConfigError
from resnetlab.models import check_cifar_depth
from resnetlab.train import PRESETS, RunConfig, fit, load_config
from resnetlab.train.cleanup import FolderSnapshot

# Config keys each run of an experiment sets (RunSpec.values, the seed, the final train error).
RUN_KEYS = ("seed", "model.name", "model.overrides", "eval_train_at_end")
MAX_SHORT_RUN_EVALS = 16  # evaluations of a run cut shorter than its preset (fit_preset_to_length)


@dataclass(frozen=True)
class Recipe:
    """What every run of an experiment shares.

    Precedence, lowest first: ``preset`` < ``defaults`` < ``sets`` < ``values`` < the run's own
    values (model, seed).

    Attributes:
        preset: a training preset name (``resnetlab.train.PRESETS``) or ``None``.
        defaults: the experiment's own dotted config keys and values (``{"iterations": 300}``).
        sets: the user's ``--set KEY=VALUE`` strings.
        values: the user's explicit options (``--iterations``, ``--data``) as dotted keys.
    """

    preset: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)

    def with_defaults(self, **defaults: Any) -> Recipe:
        """The recipe with more experiment defaults (dotted keys written with ``__``)."""
        extra = {key.replace("__", "."): value for key, value in defaults.items()}
        return dataclasses.replace(self, defaults={**self.defaults, **extra})


@dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment.

    Attributes:
        label: the model's name in tables and figures (``plain56``); one colour per label.
        seed: the run's seed.
        values: dotted config keys that make this model (``{"model.name": "cifar_plain",
            "model.overrides": {"depth": 56}}``); they win over the recipe.
        cost: the run's relative training time (its depth will do); with several jobs the
            costliest runs start first, so that no long run starts last.
    """

    label: str
    seed: int
    values: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    cost: float = field(default=0.0, hash=False, compare=False)

    @property
    def folder(self) -> str:
        """The run folder's name inside the experiment's output folder."""
        return f"{self.label}-seed{self.seed}"


def cifar_depths(depths: Sequence[int], option: str = "--depths") -> list[int]:
    """The depths, sorted and unique; each must be 6n+2 (the CIFAR nets of §4.2)."""
    for d in depths:
        check_cifar_depth(d, option)
    if not depths:
        raise ConfigError(f"{option} needs at least one depth")
    return sorted(set(depths))


def cifar_runs(kinds: Sequence[str], depths: Sequence[int], seeds: Sequence[int]) -> list[RunSpec]:
    """The CIFAR nets of §4.2 of each kind (``"plain"``, ``"resnet"``) and depth, every seed.

    Kinds come in the order given, each shallow to deep; a run's cost is its depth.
    """
    return [
        RunSpec(
            f"{kind}{d}",
            seed,
            {"model.name": f"cifar_{kind}", "model.overrides": {"depth": d}},
            cost=d,
        )
        for kind in kinds
        for d in cifar_depths(depths)
        for seed in seeds
    ]


def config_for(recipe: Recipe, run: RunSpec) -> RunConfig:
    """The resolved config of ``run``: preset < recipe values < ``--set`` < run values < seed.

    The final training error is always measured: every experiment's table needs it.

    Raises:
        ConfigError: a ``--set`` of a key each run sets itself (it would be silently replaced).
    """
    for item in recipe.sets:
        key = item.split("=", 1)[0].strip()
        if key in RUN_KEYS or key.startswith(tuple(f"{k}." for k in RUN_KEYS)):
            raise ConfigError(
                f"--set {key}: every run of an experiment sets it itself (seeds: --seeds and "
                "--first-seed; models: the experiment's own options)"
            )
    flags = {**recipe.values, **run.values, "seed": run.seed, "eval_train_at_end": True}
    return load_config(
        preset=recipe.preset, sets=recipe.sets, flags=flags, defaults=recipe.defaults
    )


def fit_preset_to_length(recipe: Recipe, probe: RunSpec) -> Recipe:
    """Scale a preset's iteration-based settings to a shorter (or longer) run.

    With ``--preset cifar-paper --iterations 640`` the lr still drops at 50% and 75% of the run
    (32k and 48k of 64k in the paper), and evaluations, log lines and checkpoints keep their
    share of it, except that a shorter run evaluates at most ``MAX_SHORT_RUN_EVALS`` times. Only
    values that still equal the preset's are scaled: ``--set`` wins.
    """
    if recipe.preset is None:
        return recipe
    preset = PRESETS[recipe.preset]
    cfg = config_for(recipe, probe)
    length, planned = cfg.iterations, preset.get("iterations")
    if length is None or planned is None or length == planned:
        return recipe
    scale = length / planned
    defaults: dict[str, Any] = {}
    milestones = preset.get("schedule", {}).get("milestones")
    if milestones and cfg.schedule.milestones == milestones:
        defaults["schedule.milestones"] = sorted({max(1, round(m * scale)) for m in milestones})
    for key in ("eval_every", "log_every", "checkpoint_every"):
        if key in preset and getattr(cfg, key) == preset[key]:
            defaults[key] = max(1, round(preset[key] * scale))
    if "eval_every" in defaults and scale < 1:
        # A pass over the test set costs as much in a short run as in a long one: cap their
        # number, or a 500-iteration CPU run would spend most of its time evaluating.
        defaults["eval_every"] = max(defaults["eval_every"], length // MAX_SHORT_RUN_EVALS)
    return dataclasses.replace(recipe, defaults={**recipe.defaults, **defaults})


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` ran to its end (``fit`` writes ``summary.json`` last)."""
    return (Path(run_dir) / "summary.json").is_file()


def run_all(
    runs: Sequence[RunSpec],
    recipe: Recipe,
    out: str | Path,
    *,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> dict[RunSpec, dict]:
    """Train every run not finished yet and return every run's ``summary.json``.

    Args:
        runs: the runs, in the order they are reported.
        recipe: the settings they share.
        out: the experiment's folder; run ``r`` lives in ``out / r.folder``.
        jobs: runs trained at the same time, each in a process of its own with an equal share of
            the CPU threads (small CPU models train faster side by side than one after another
            on all threads).
        log: where progress lines go.

    Returns:
        ``{run: summary}`` for all runs, in the order given.

    Raises:
        ConfigError: a bad recipe value, or a finished run folder made with another config.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1; got {jobs}")
    out = Path(out)
    configs = {run: config_for(recipe, run) for run in runs}  # every config error before training
    todo = []
    for run, cfg in configs.items():
        if is_finished(out / run.folder):
            check_same_config(out / run.folder, cfg)
            log(f"{run.folder}: finished earlier, skipped")
        else:
            todo.append(run)
    if jobs == 1 or len(todo) <= 1:
        for run in todo:
            log(f"{run.folder}: training")
            fit(configs[run], out / run.folder, resume=True)
    else:
        todo.sort(key=lambda r: -r.cost)  # stable: equal costs keep their order
        before = FolderSnapshot.take(out)  # the experiment's folders this call will make
        try:
            _run_parallel([(configs[r], out / r.folder) for r in todo], jobs, log)
        except BaseException:
            # Each worker removed its own run's traces; runs side by side cannot tell which of
            # them made the folders above, so those go here, and only while empty.
            before.remove_made()
            raise
    return {run: read_json(out / run.folder / "summary.json") for run in runs}


def check_same_config(run_dir: Path, cfg: RunConfig) -> None:
    """Raise ``ConfigError`` if the finished run in ``run_dir`` used another config than ``cfg``.

    Skipping such a run would mix two recipes in one table. A key the saved config lacks is a
    field added to ``RunConfig`` after the run: the run had its default.
    """
    saved = read_json(run_dir / "summary.json").get("config", {})
    wanted = dataclasses.asdict(cfg)
    diff = sorted(_differences(saved, wanted, dataclasses.asdict(RunConfig())))
    if diff:
        key, old, new = diff[0]
        more = f" (and {len(diff) - 1} more)" if len(diff) > 1 else ""
        raise ConfigError(
            f"{run_dir} holds a finished run with {key}={old!r}, not {new!r}{more}; "
            "choose another --out or remove that folder"
        )


def _differences(
    saved: Any, wanted: Any, default: Any, prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    if isinstance(saved, dict) and isinstance(wanted, dict):
        default = default if isinstance(default, dict) else {}
        found = []
        for k in dict.fromkeys([*wanted, *saved]):
            old = saved[k] if k in saved else default.get(k)  # a newer field: its default
            found += _differences(old, wanted.get(k), default.get(k), f"{prefix}{k}.")
        return found
    return [] if saved == wanted else [(prefix.rstrip("."), saved, wanted)]


def _run_parallel(work: list[tuple[RunConfig, Path]], jobs: int, log: Callable) -> None:
    threads = max(1, torch.get_num_threads() // jobs)
    log(
        f"training {len(work)} runs, {jobs} at a time with {threads} thread(s) each; "
        "progress goes to each run's train.log"
    )
    # "spawn": a forked child of a process whose thread pools already ran can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(_fit_logged, cfg, folder): folder for cfg, folder in work}
        for future in as_completed(futures):
            summary = future.result()  # re-raises a run's error here
            train, test = summary["final"]["train_error"], summary["final"]["test_error"]
            log(
                f"{futures[future].name}: done in {summary['wall_s']:.0f} s, final training "
                f"error {100 * train:.2f}%, test error {100 * test:.2f}%"
            )


def _fit_logged(cfg: RunConfig, folder: Path) -> dict:
    """``fit`` with its progress lines and warnings in ``folder/train.log`` (runs side by side
    would interleave them, or their progress bars, on the terminal).

    A run that fails before its first step removes what it made (``fit``); then the log, and
    the folder if this made it, go too: a run that never started leaves no trace.
    """
    before = FolderSnapshot.take(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "train.log"
    had_log = log.exists()
    try:
        with (
            open(log, "a", encoding="utf-8", buffering=1) as f,  # line by line
            redirect_stdout(f),
            redirect_stderr(f),
        ):
            return fit(cfg, folder, resume=True)
    except BaseException:
        if not had_log and set(os.listdir(folder)) - before.before == {log.name}:
            before.undo()
        raise
