"""The parts of an analysis experiment: each computed once, kept on disk, read back on a rerun.

An analysis experiment (``signal``, ``shattered``, ``lesion``) is a list of parts: a pair of nets
measured at initialisation, or one trained net's lesions. A part's record is written atomically to
its own JSON file as soon as it is finished, with the settings it was computed from. A rerun with
the same settings reads the record back instead of computing it; one with other settings is
refused, as a finished training run of another config is (``runner.check_same_config``), so one
folder never mixes two settings. A killed experiment therefore loses only the parts that were in
progress, and the same command continues it.

With ``jobs`` > 1 the parts are computed side by side in spawned processes, each with ``threads``
intra-op threads: small CPU models run fastest on one thread each (a signal study of the default
nets took 12 s on one thread and 151 s on two on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resnetlab.analysis.records import read_json, write_json
from resnetlab.errors import ConfigError, DataError

FORMAT = 1  # version of the part files


@dataclass(frozen=True)
class Part:
    """One unit of an analysis experiment.

    Attributes:
        name: the part's name in progress lines (``bn-depth56-seed0``).
        path: the JSON file that keeps its record.
        settings: JSON-ready values that decide the result; a kept record of other settings is
            refused.
        compute: a module-level function (spawned processes receive it by name) that returns the
            part's JSON-ready record.
        args: the arguments of ``compute`` (picklable: paths, numbers, tensors).
        cost: its relative computing time (a depth will do); with several jobs the costliest
            parts start first, so that no long part starts last.
    """

    name: str
    path: Path
    settings: Mapping[str, Any]
    compute: Callable[..., Any] = field(compare=False)
    args: tuple = field(default=(), compare=False)
    cost: float = field(default=0.0, compare=False)


def run_parts(
    parts: Sequence[Part],
    *,
    jobs: int = 1,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> list[Any]:
    """Compute every part not kept yet and return every part's record, in the order given.

    Args:
        parts: the parts (distinct paths).
        jobs: parts computed at the same time, each in its own spawned process; 1 computes them
            here, one after another.
        threads: intra-op threads of each computation (here, for the time it takes, or in each
            process).
        log: where progress lines go: ``NAME: computing`` or ``NAME: computed earlier, read back``.

    Raises:
        ConfigError: ``jobs`` or ``threads`` below 1, or a kept part of other settings.
        DataError: a kept part file that is not one.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1; got {jobs}")
    if threads < 1:
        raise ConfigError(f"threads must be at least 1; got {threads}")
    records: dict[Path, Any] = {}
    todo = []
    for part in parts:
        kept = _kept(part)
        if kept is not None:
            log(f"{part.name}: computed earlier, read back")
            records[part.path] = kept
        else:
            log(f"{part.name}: computing")
            todo.append(part)
    if jobs == 1 or len(todo) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for part in todo:
                records[part.path] = _compute_and_keep(part)
        finally:
            torch.set_num_threads(before)
    else:
        # "spawn": a forked child of a process whose thread pools already ran can deadlock.
        todo.sort(key=lambda p: -p.cost)  # stable: equal costs keep their order
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=torch.set_num_threads,
            initargs=(threads,),
        ) as pool:
            futures = {part.path: pool.submit(_compute_and_keep, part) for part in todo}
            for path, future in futures.items():
                records[path] = future.result()  # re-raises a part's error here
    return [records[part.path] for part in parts]


def json_ready(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists, keys as strings): what is compared."""
    return json.loads(json.dumps(value))


def _compute_and_keep(part: Part) -> Any:
    record = json_ready(part.compute(*part.args))
    write_json(
        part.path,
        {
            "format": FORMAT,
            "part": part.name,
            "settings": json_ready(part.settings),
            "record": record,
        },
    )
    return record


def _kept(part: Part) -> Any | None:
    """The part's kept record, ``None`` if there is none yet."""
    if not part.path.is_file():
        return None
    kept = read_json(part.path)
    if not isinstance(kept, dict) or kept.get("format") != FORMAT or "record" not in kept:
        raise DataError(f"{part.path}: not a part file of this experiment; remove it")
    wanted = json_ready(part.settings)
    saved = kept.get("settings")
    if saved != wanted:
        diff = [k for k in wanted if not isinstance(saved, dict) or saved.get(k) != wanted[k]]
        key = diff[0] if diff else "settings"
        old = saved.get(key) if isinstance(saved, dict) else None
        raise ConfigError(
            f"{part.path} holds a part computed with {key}={old!r}, not {wanted.get(key)!r}; "
            "choose another --out or remove that file"
        )
    return kept["record"]
