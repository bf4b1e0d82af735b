"""Everything one training run holds, built from a ``RunConfig``, saved to and restored from
checkpoints. ``loop.py`` drives it."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetlab.atomic import write_text
from resnetlab.data import (
    ArrayDataset,
    DatasetInfo,
    load_dataset,
    make_loader,
    train_val_split,
)
from resnetlab.data.registry import get_entry
from resnetlab.errors import ConfigError
from resnetlab.models import build_model, check_input_size
from resnetlab.outputs import check_output, check_output_dir
from resnetlab.train import distributed
from resnetlab.train.checkpoint import (
    FORMAT,
    describe,
    load_newest_intact,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from resnetlab.train.config import RunConfig, config_to_yaml
from resnetlab.train.distributed import World, unwrap
from resnetlab.train.ema import WeightEMA
from resnetlab.train.finetune import freeze
from resnetlab.train.host_memory import apply_host_memory
from resnetlab.train.meter import IntervalMeter
from resnetlab.train.metrics import RunLog, truncate_records
from resnetlab.train.optim import make_optimizer, param_groups
from resnetlab.train.precision import (
    make_scaler,
    resolve_device,
    resolve_precision,
    set_deterministic,
)
from resnetlab.train.schedule import LRSchedule
from resnetlab.train.weights import load_state, load_weights

log = logging.getLogger(__name__)
VAL_SPLIT_SEED = 0  # the validation images are the same for every run seed, so runs compare
SUBSET_SEED = 1  # data.train_fraction's subset, likewise the same for every run seed
RUN_FILES = ("metrics.jsonl", "metrics.csv", "grad_norms.jsonl", "summary.json")
OWN_FILES = ("config.yaml", *RUN_FILES)  # every file a run writes beside checkpoints/ and .lock


@dataclass
class Run:
    """A training run in progress: its parts, and where it stands.

    ``iteration`` counts optimizer steps done; ``epoch`` and ``batch`` say which batch comes next
    (``batch == len(train_loader)`` means the epoch is finished).
    """

    cfg: RunConfig
    out: Path | None  # the run folder (None: a run that writes nothing, as bench train's)
    world: World
    device: torch.device
    precision: str
    info: DatasetInfo
    model: nn.Module  # as trained: possibly in DDP and compiled; `unwrap` gives the plain model
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    train_loader: Any
    eval_loaders: dict[str, Any]  # {"val": ..., "test": ...}, un-augmented, every sample once
    train_eval_loader: Any  # the train split, un-augmented, for the final train error
    total: int  # iterations in the whole run
    ema: WeightEMA | None = None  # the weights' moving average (ema_decay > 0), evaluated instead
    log: RunLog = field(repr=False, default=None)
    meter: IntervalMeter = field(default_factory=IntervalMeter)
    iteration: int = 0
    epoch: int = 0
    batch: int = 0
    best: dict[str, Any] | None = None
    last_eval: dict[str, Any] | None = None
    wall_before: float = 0.0  # wall time of earlier sessions of this run (before a resume)
    train_s: float = 0.0  # time spent in training steps, all sessions
    images: int = 0  # images trained on, all sessions (for img/s)
    started: float = field(default_factory=time.perf_counter)

    @property
    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"


def build_run(cfg: RunConfig, out: Path | None, world: World, resume: bool = False) -> Run:
    """Set up data, model, optimizer and schedule; continue from ``out``'s last checkpoint.

    Args:
        cfg: the resolved config.
        out: the run folder; ``None`` builds the run without one (``bench train``: nothing is
            written, and ``log`` writes nothing).
        world: this process's place in a distributed run.
        resume: continue from ``out/checkpoints/last.pt`` where there is one.
    """
    device = resolve_device(cfg.device, world.local_rank)
    apply_host_memory(cfg.host_memory, device.type)  # before the data and the model take any
    distributed.init(world, device)
    if cfg.deterministic:
        set_deterministic(True)
    _seed_everything(cfg.seed)
    if cfg.batch_size % world.world_size:
        raise ConfigError(
            f"batch_size {cfg.batch_size} (the global batch) must divide evenly among "
            f"{world.world_size} processes"
        )
    train_ds, eval_sets = _datasets(cfg)
    info = train_ds.info
    check_input_size(cfg.model.name, info.image_size)
    loader = _loaders(cfg, train_ds, eval_sets, device, world)
    model = build_model(cfg.model.name, len(info.classes), info.channels, cfg.model.overrides)
    if cfg.model.weights is not None:  # a resumed run overwrites them with its checkpoint's
        # Fine-tuning on other classes: the file's classifier cannot serve, a fresh one does.
        say = log.info if world.main else None
        load_weights(model, cfg.model.weights, new_head=True, say=say)
    freeze(model, cfg.model.freeze)  # before the optimizer and DDP see the parameters
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    model = distributed.wrap(model, world, device, cfg.sync_bn)
    if cfg.compile:
        model = torch.compile(model)
    optimizer = make_optimizer(cfg.optim, param_groups(unwrap(model), cfg.optim))
    total = cfg.iterations or cfg.epochs * len(loader["train"])
    if cfg.data.train_sizes:
        _schedule_sizes(loader["train"], cfg.data.train_sizes, -(-total // len(loader["train"])))
    precision = resolve_precision(cfg.precision, device)
    run = Run(
        cfg,
        out,
        world,
        device,
        precision,
        info,
        model,
        optimizer,
        LRSchedule(cfg.schedule, cfg.optim.lr, total),
        make_scaler(precision, device),
        loader["train"],
        loader["eval"],
        loader["train_eval"],
        total,
        ema,
    )
    if out is None:
        run.log = RunLog(Path(), total, 0, enabled=False)
        return run
    _prepare_folder(run, resume)
    run.log = RunLog(out, total, run.iteration, world.main, cfg.tensorboard)
    return run


def checkpoint_state(run: Run) -> dict[str, Any]:
    """The checkpoint dict of the run as it stands (see ``resnetlab.train.checkpoint``)."""
    from resnetlab import __version__

    info = run.info
    return {
        "format": FORMAT,
        "version": __version__,
        **describe(
            run.cfg.model.name,
            run.cfg.model.overrides,
            info,
            info.mean,
            info.std,
            dataclasses.asdict(run.cfg),
        ),
        "state": {
            "model": unwrap(run.model).state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "schedule": run.schedule.state_dict(),
            "scaler": run.scaler.state_dict(),
            **({"ema": run.ema.state_dict()} if run.ema is not None else {}),
        },
        "progress": {
            "iteration": run.iteration,
            "epoch": run.epoch,
            "batch": run.batch,
            "wall_s": run.wall_s,
            "train_s": run.train_s,
            "images": run.images,
            "meter": run.meter.state_dict(),
        },
        "rng": rng_state(),
        "best": run.best,
        "last_eval": run.last_eval,
    }


def save(run: Run, *, last: bool, best: bool) -> None:
    """Write a checkpoint on rank 0; every rank waits for it."""
    run.train_s += run.meter.flush(run.world)  # the checkpoint holds the host sums only
    distributed.broadcast_buffers(unwrap(run.model), run.world)
    if run.world.main:
        write_checkpoint(
            run.checkpoints,
            checkpoint_state(run),
            last=last,
            best=best,
            keep_last=run.cfg.keep_last,
        )
    distributed.barrier(run.world)


def write_summary(run: Run, summary: dict[str, Any]) -> None:
    if run.world.main:
        write_text(run.out / "summary.json", json.dumps(summary, indent=2) + "\n")


def check_run_folder(out: str | Path, cfg: RunConfig, inputs: Sequence[Any]) -> Path:
    """Refuse a run folder that is a file, lies in a run's ``checkpoints/`` or in the dataset's
    folder, or whose files would replace one of ``inputs`` (``resnetlab.outputs``)."""
    reads_files = cfg.data.root is not None and get_entry(cfg.data.name).folder != ""
    out = check_output_dir(out, folders=[cfg.data.root if reads_files else None], option="--out")
    for name in OWN_FILES:
        check_output(out / name, inputs, option="--out")
    return out


def _prepare_folder(run: Run, resume: bool) -> None:
    """Start a fresh run folder, or continue from its last checkpoint.

    A fresh run refuses a folder holding any file of a run (a run killed before its first
    checkpoint continues with ``--resume``), so that it replaces nothing a failed start would
    have to restore.
    """
    last = run.checkpoints / "last.pt"
    held = any((run.out / name).exists() for name in (*OWN_FILES, "checkpoints"))
    if not resume and held:
        raise ConfigError(
            f"{run.out} already holds a run: continue it with --resume {run.out}, "
            f"or give another --out"
        )
    if resume and last.exists():
        ckpt, path = load_newest_intact(
            run.checkpoints, model=run.cfg.model.name, map_location=run.device
        )
        _restore(run, ckpt, str(path))
    # Every rank has looked at the folder before rank 0 writes into it: a rank that looked
    # after rank 0's config.yaml appeared would take its own run for another's.
    distributed.barrier(run.world)
    if run.world.main:
        run.out.mkdir(parents=True, exist_ok=True)
        write_text(run.out / "config.yaml", config_to_yaml(run.cfg))
        for name in RUN_FILES:  # records of steps after the checkpoint are redone
            if run.iteration == 0:
                (run.out / name).unlink(missing_ok=True)
            elif name.endswith(".jsonl"):
                truncate_records(run.out / name, run.iteration)
        if run.iteration == 0 and run.checkpoints.exists():
            shutil.rmtree(run.checkpoints)
    distributed.barrier(run.world)


def _restore(run: Run, ckpt: dict[str, Any], source: str) -> None:
    state, progress = ckpt["state"], ckpt["progress"]
    load_state(unwrap(run.model), state["model"], source)
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None and "ema" in state:
        run.ema.load_state_dict(state["ema"])
    elif run.ema is not None:  # EMA turned on for the rest of a run: it starts from here
        run.ema = WeightEMA(unwrap(run.model), run.ema.decay)
    run.iteration, run.epoch, run.batch = (progress[k] for k in ("iteration", "epoch", "batch"))
    run.wall_before, run.train_s = progress["wall_s"], progress["train_s"]
    run.images, run.best, run.last_eval = progress["images"], ckpt["best"], ckpt["last_eval"]
    run.meter.load_state_dict(progress["meter"])
    set_rng_state(ckpt["rng"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _datasets(cfg: RunConfig) -> tuple[Any, dict[str, Any]]:
    d = cfg.data
    kwargs = {
        "root": d.root,
        "download": d.download,
        "verify": d.verify,
        "strict": d.strict,
        "image_size": d.image_size,
        "test_fraction": d.test_fraction,
    }
    train = load_dataset(d.name, "train", **kwargs)
    sets = {}
    if d.val_fraction > 0:
        if not isinstance(train, ArrayDataset):
            raise ConfigError(
                f"data.val_fraction applies to in-memory datasets; {d.name!r} is a folder "
                f"(give it a separate val/ folder and evaluate with `resnetlab eval`)"
            )
        train, sets["val"] = train_val_split(train, d.val_fraction, VAL_SPLIT_SEED)
    if d.train_fraction < 1:
        if not isinstance(train, ArrayDataset):
            raise ConfigError(f"data.train_fraction applies to in-memory datasets, not {d.name!r}")
        _, train = train_val_split(train, d.train_fraction, SUBSET_SEED)  # the drawn share
    sets["test"] = load_dataset(d.name, "test", **kwargs)
    return train, sets


def _loaders(cfg, train_ds, eval_sets, device, world) -> dict[str, Any]:
    common = {
        "device": device,
        "seed": cfg.seed,
        "rank": world.rank,
        "world_size": world.world_size,
        "workers": cfg.data.workers,
        "channels_last": cfg.channels_last,
    }
    per_rank = cfg.batch_size // world.world_size
    train = make_loader(train_ds, per_rank, train=True, augment=cfg.data.augment, **common)
    if len(train) == 0:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} exceeds the {len(train_ds)} training images of "
            f"{cfg.data.name} (batch_size is the global batch)"
        )
    return {
        "train": train,
        "eval": {
            k: make_loader(ds, per_rank, train=False, **common) for k, ds in eval_sets.items()
        },
        "train_eval": make_loader(train_ds, per_rank, train=False, **common),
    }


def _schedule_sizes(loader: Any, sizes: list[int], epochs: int) -> None:
    """Progressive resizing: ``len(sizes)`` equal parts of the run's epochs, one side each."""
    if not hasattr(loader, "sizes"):
        raise ConfigError("data.train_sizes applies to in-memory datasets (the device loader)")
    loader.sizes = [(i * epochs // len(sizes), side) for i, side in enumerate(sizes)]
