"""Computing a loss-landscape grid in several processes, resumable after a kill.

The grid's points, in row-major order (``beta`` outer, ``alpha`` inner), are cut into chunks of
``CHUNK`` points. A chunk is the unit of work: one process evaluates its points in order and,
after each point, rewrites ``out_dir/chunks/chunk-NNNNN.json`` atomically with every point of the
chunk finished so far (``resnetlab.analysis.records.write_json``: temporary file, fsync, rename).
A kill therefore loses at most the point being evaluated. ``out_dir/landscape.json`` records the
grid, the seed and a fingerprint of the weights and the data; a rerun with the same ones skips
every finished point, and one with other ones is refused rather than mixed in.

Processes are spawned (a forked child of a process whose thread pools already ran can deadlock),
each with ``torch.get_num_threads() // jobs`` threads, and receive the model, the directions and
the batches once, when they start.
"""

from __future__ import annotations

import copy
import hashlib
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from resnetlab.analysis.netinfo import Batches, preserved
from resnetlab.analysis.records import read_json, write_json
from resnetlab.errors import ConfigError, DataError

CHUNK = 16  # points per chunk file: small files, rewritten in well under a millisecond
FORMAT = 1  # version of landscape.json and the chunk files


@dataclass(frozen=True)
class GridSpec:
    """The points of a landscape and the directions' seed.

    Attributes:
        alphas: coordinates along the first direction.
        betas: coordinates along the second one, or ``None`` (a 1-D curve).
        seed: the seed of the directions.
    """

    alphas: tuple[float, ...]
    betas: tuple[float, ...] | None
    seed: int

    @staticmethod
    def make(alphas: Sequence[float], betas: Sequence[float] | None, seed: int) -> GridSpec:
        """Check and freeze a grid: finite coordinates, at least one along each axis."""
        axes = [("alphas", alphas)] + ([] if betas is None else [("betas", betas)])
        for name, axis in axes:
            values = np.asarray(axis, dtype=np.float64)
            if values.ndim != 1 or len(values) == 0 or not np.isfinite(values).all():
                raise ConfigError(f"{name} must be a non-empty list of finite numbers")
        frozen = lambda a: tuple(float(v) for v in a)  # noqa: E731
        return GridSpec(frozen(alphas), None if betas is None else frozen(betas), int(seed))

    def points(self) -> list[tuple[float, ...]]:
        """The coordinates of every point, row-major: ``(a,)`` or ``(a, b)``."""
        if self.betas is None:
            return [(a,) for a in self.alphas]
        return [(a, b) for b in self.betas for a in self.alphas]


class PointEvaluator(Protocol):
    """What the grid needs: the ``(loss, error)`` at a point's coordinates."""

    def point(self, coords: tuple[float, ...]) -> tuple[float, float]: ...


# Builds a PointEvaluator from (model, batches, spec); a module-level name, so that spawned
# processes can receive it (``resnetlab.analysis.landscape.Evaluator``).
EvaluatorFactory = Callable[[nn.Module, Batches, GridSpec], PointEvaluator]


def compute_grid(
    factory: EvaluatorFactory,
    model: nn.Module,
    batches: Batches,
    spec: GridSpec,
    jobs: int,
    out_dir: str | Path | None,
) -> tuple[np.ndarray, int]:
    """Evaluate every point of ``spec`` not already finished in ``out_dir``.

    Args:
        factory: makes the evaluator, here and in each spawned process.
        model: the trained net (restored exactly when evaluated in this process).
        batches: the data every point is evaluated on.
        spec: the grid.
        jobs: processes; 1 (or a single chunk to compute) evaluates in this process.
        out_dir: where finished points are kept, or ``None``.

    Returns:
        ``(values, computed)``: (P, 2) loss and error per point in row-major order, and how many
        points this call evaluated.
    """
    points = spec.points()
    out = Path(out_dir) if out_dir is not None else None
    done = _resume(out, spec, model, batches) if out is not None else {}
    chunks = [
        (c, [i for i in range(start, min(start + CHUNK, len(points))) if i not in done])
        for c, start in enumerate(range(0, len(points), CHUNK))
    ]
    work = [(c, todo) for c, todo in chunks if todo]
    results = dict(done)
    if jobs == 1 or len(work) <= 1:
        with preserved(model):
            evaluator = factory(model, batches, spec)
            for c, todo in work:
                results.update(_run_chunk(evaluator, c, todo, points, done, out))
    else:
        results.update(_run_pool(factory, model, batches, spec, work, points, done, out, jobs))
    values = np.array([results[i] for i in range(len(points))], dtype=np.float64)
    return values, len(results) - len(done)


def _run_chunk(
    evaluator: PointEvaluator,
    chunk: int,
    todo: list[int],
    points: list[tuple[float, ...]],
    done: dict[int, tuple[float, float]],
    out: Path | None,
) -> dict[int, tuple[float, float]]:
    """Evaluate a chunk's unfinished points, rewriting its file after each one."""
    start = chunk * CHUNK
    finished = {i: done[i] for i in range(start, start + CHUNK) if i in done}
    for i in todo:
        finished[i] = evaluator.point(points[i])
        if out is not None:
            record = {str(k): list(v) for k, v in sorted(finished.items())}
            write_json(
                _chunk_path(out, chunk), {"format": FORMAT, "chunk": chunk, "points": record}
            )
    return {i: finished[i] for i in todo}


def _run_pool(
    factory, model, batches, spec, work, points, done, out, jobs
) -> dict[int, tuple[float, float]]:
    if any(t.is_cuda for t in [*model.parameters(), *model.buffers()]):
        raise ConfigError("jobs > 1 computes on the CPU; move the model there or use jobs=1")
    threads = max(1, torch.get_num_threads() // jobs)
    # Tensors reach spawned processes through shared memory: send copies, so that the caller's
    # own tensors stay as they are, and let each process copy the model once more (below).
    model, batches = copy.deepcopy(model), [(x.clone(), y.clone()) for x, y in batches]
    # "spawn": a forked child of a process whose thread pools already ran can deadlock.
    context = multiprocessing.get_context("spawn")
    results: dict[int, tuple[float, float]] = {}
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(factory, model, batches, spec, threads),
    ) as pool:
        futures = [
            pool.submit(_worker_chunk, c, todo, points, _of_chunk(done, c), out) for c, todo in work
        ]
        for future in as_completed(futures):
            results.update(future.result())
    return results


_WORKER: list[PointEvaluator] = []  # each spawned process's own model, directions and data


def _init_worker(factory, model: nn.Module, batches: Batches, spec: GridSpec, threads: int) -> None:
    torch.set_num_threads(threads)
    # A private copy: the received parameters live in memory shared by every process, and each
    # process moves its weights to its own points.
    _WORKER.append(factory(copy.deepcopy(model), batches, spec))


def _worker_chunk(chunk, todo, points, done, out) -> dict[int, tuple[float, float]]:
    return _run_chunk(_WORKER[0], chunk, todo, points, done, out)


def _of_chunk(done: dict[int, tuple], chunk: int) -> dict[int, tuple]:
    return {i: done[i] for i in range(chunk * CHUNK, (chunk + 1) * CHUNK) if i in done}


def fingerprint(model: nn.Module, batches: Batches) -> str:
    """SHA-256 of every parameter and buffer (by name) and of the batches: what the landscape
    is of. Two runs with equal fingerprints compute equal points."""
    digest = hashlib.sha256()
    tensors = [(k, v) for k, v in model.state_dict().items()]
    tensors += [(f"batch{i}.{j}", t) for i, pair in enumerate(batches) for j, t in enumerate(pair)]
    for name, tensor in tensors:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def _resume(out: Path, spec: GridSpec, model: nn.Module, batches: Batches) -> dict[int, tuple]:
    """The points ``out`` already holds; writes ``landscape.json`` on the first run."""
    manifest = {"format": FORMAT, **asdict(spec), "fingerprint": fingerprint(model, batches)}
    manifest["betas"] = None if spec.betas is None else list(spec.betas)
    manifest["alphas"] = list(spec.alphas)
    path = out / "landscape.json"
    if path.exists():
        old = read_json(path)
        differing = [k for k in manifest if not isinstance(old, dict) or old.get(k) != manifest[k]]
        if differing:
            raise ConfigError(
                f"{path}: holds a landscape of other {', '.join(differing)}; "
                "use another folder or remove this one"
            )
    else:
        write_json(path, manifest)
    done: dict[int, tuple[float, float]] = {}
    total = len(spec.points())
    for chunk_file in sorted((out / "chunks").glob("chunk-*.json")):
        record = read_json(chunk_file)
        try:
            for key, (loss, error) in record["points"].items():
                if not 0 <= int(key) < total:
                    raise ValueError(key)
                done[int(key)] = (float(loss), float(error))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{chunk_file}: not a landscape chunk of this grid") from None
    return done


def _chunk_path(out: Path, chunk: int) -> Path:
    return out / "chunks" / f"chunk-{chunk:05d}.json"
