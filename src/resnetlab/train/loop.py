"""The training loop: ``fit`` runs ``train_one_epoch`` until the run's last iteration, and
``evaluate`` measures loss and error. Logging, evaluation and checkpoints happen between steps,
when their intervals come due (``after_step``)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import UserError
from resnetlab.train import distributed
from resnetlab.train.checkpoint import unwrap
from resnetlab.train.config import RunConfig
from resnetlab.train.precision import autocast
from resnetlab.train.run import Run, build_run, save, write_summary
from resnetlab.train.runlock import run_lock


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def fit(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train a model as ``cfg`` says, writing everything into ``out_dir``.

    Args:
        cfg: the resolved run config.
        out_dir: the run folder (config.yaml, metrics, checkpoints/, summary.json).
        resume: continue from ``out_dir/checkpoints/last.pt`` (from the start if there is none).

    Returns:
        The summary, also written to ``out_dir/summary.json``.

    Raises:
        ConfigError: another run is writing to ``out_dir`` (see ``runlock``).
    """
    world = distributed.world_from_env()
    with run_lock(out_dir, enabled=world.main):  # rank 0 writes the folder for every rank
        return _fit(cfg, Path(out_dir), world, resume)


def _fit(cfg: RunConfig, out_dir: Path, world: distributed.World, resume: bool) -> dict[str, Any]:
    run = build_run(cfg, out_dir, world, resume)
    try:
        while run.iteration < run.total:
            train_one_epoch(run)
        summary = _summary(run)
        write_summary(run, summary)
        return summary
    finally:
        run.log.close()
        run.model = None  # DDP holds the process group: let it go while every peer is alive
        distributed.shutdown(run.world)


def train_one_epoch(run: Run) -> None:
    """Train on the rest of epoch ``run.epoch`` (from batch ``run.batch``), or up to the run's end.

    Raises:
        TrainingDiverged: the loss is NaN or infinite.
    """
    model, cfg, meter = run.model, run.cfg, run.meter
    model.train()
    for images, labels in run.train_loader.epoch(run.epoch, start=run.batch):
        tic = time.perf_counter()
        lr = run.schedule.lr_at(run.iteration)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        with autocast(run.precision, run.device):
            logits = model(images)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.optim.label_smoothing)
        wrong, n = (logits.argmax(1) != labels).sum().item(), len(labels)
        # Loss sum, errors and images of the GLOBAL batch, before any weight changes.
        batch = torch.tensor([loss.item() * n, wrong, n], dtype=torch.float64)
        stats = distributed.all_reduce_sum(batch, run.world).tolist()
        if not math.isfinite(stats[0]):
            raise _diverged(run, f"the loss is {stats[0] / stats[2]}", lr)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.grad_norms_every and (run.iteration + 1) % cfg.grad_norms_every == 0:
            run.scaler.unscale_(run.optimizer)
            run.log.grad_norms(run.iteration + 1, grad_norms(model))
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.iteration, run.batch = run.iteration + 1, run.batch + 1
        run.schedule.observe(stats[1] / stats[2])
        meter.add(stats, time.perf_counter() - tic)
        run.train_s, run.images = run.train_s + meter.last_s, run.images + int(stats[2])
        after_step(run, lr)
        if run.iteration >= run.total:
            return
    run.epoch, run.batch = run.epoch + 1, 0


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    precision: str = "fp32",
    world: distributed.World | None = None,
) -> dict[str, float]:
    """Mean cross-entropy (no label smoothing) and error of ``model`` on every sample of a loader.

    The model runs in eval mode (BN uses its running statistics) and is put back as it was. In a
    distributed run each rank passes its shard and the sums are added up across ranks.

    Returns:
        {"loss": ..., "error": ...}, the error as a fraction in [0, 1].
    """
    world = world or distributed.World()
    plain = unwrap(model)  # no DDP: ranks may hold different numbers of eval batches
    was_training = plain.training
    plain.eval()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, errors, images
    for images, labels in loader.epoch(0):
        with autocast(precision, images.device):
            logits = plain(images).float()  # (B, num_classes)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        wrong = (logits.argmax(1) != labels).sum()
        totals += torch.tensor([loss.item(), wrong.item(), len(labels)], dtype=torch.float64)
    plain.train(was_training)
    loss_sum, errors, count = distributed.all_reduce_sum(totals, world).tolist()
    return {"loss": loss_sum / count, "error": errors / count}


def after_step(run: Run, lr: float) -> None:
    """Log, evaluate and checkpoint when their intervals come due (and at the end of the run)."""
    cfg, it = run.cfg, run.iteration
    epoch_done = run.batch == len(run.train_loader)
    run_done = it >= run.total
    epochs = round(it / len(run.train_loader), 4)
    run.log.step(it)
    if it % cfg.log_every == 0 or run_done:
        record = {"kind": "train", "iteration": it, "epoch": epochs, "lr": lr}
        run.log.write(record | run.meter.read() | {"wall_s": round(run.wall_s, 3)})
    eval_due = it % cfg.eval_every == 0 if cfg.eval_every else epoch_done
    last_due = it % cfg.checkpoint_every == 0 if cfg.checkpoint_every else epoch_done
    if (eval_due or last_due or run_done) and not _all_finite(run.model):
        raise _diverged(run, "a weight is no longer finite", lr)  # and no checkpoint has it
    is_best = _evaluate_all(run, epochs) if eval_due or run_done else False
    if last_due or run_done or is_best:
        save(run, last=last_due or run_done, best=is_best)


def grad_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of every conv and fc weight, by parameter name."""
    norms = {}
    for name, module in unwrap(model).named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.grad is not None:
            norms[f"{name}.weight"] = module.weight.grad.float().norm().item()
    return norms


def _evaluate_all(run: Run, epochs: float) -> bool:
    """Evaluate on val and test; return whether this is the best model so far."""
    distributed.broadcast_buffers(unwrap(run.model), run.world)
    record: dict[str, Any] = {"kind": "eval", "iteration": run.iteration, "epoch": epochs}
    for split, loader in run.eval_loaders.items():
        m = evaluate(run.model, loader, precision=run.precision, world=run.world)
        record |= {f"{split}_loss": m["loss"], f"{split}_error": m["error"]}
    record["wall_s"] = round(run.wall_s, 3)
    run.log.write(record)
    run.last_eval = record
    metric = "val_error" if "val" in run.eval_loaders else "test_error"
    if run.best is not None and record[metric] >= run.best["value"]:
        return False
    run.best = {"metric": metric, "value": record[metric]} | record
    return True


def _all_finite(model: nn.Module) -> bool:
    return all(bool(t.isfinite().all()) for t in unwrap(model).state_dict().values())


def _diverged(run: Run, what: str, lr: float) -> TrainingDiverged:
    last = run.checkpoints / "last.pt"
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written"
    return TrainingDiverged(
        f"training diverged: {what} at iteration {run.iteration} (lr {lr:g}); {kept}; "
        f"try a lower --lr"
    )


def _summary(run: Run) -> dict[str, Any]:
    final = {}
    if run.cfg.eval_train_at_end:
        m = evaluate(run.model, run.train_eval_loader, precision=run.precision, world=run.world)
        final |= {"train_loss": m["loss"], "train_error": m["error"]}
    if run.last_eval is None or run.last_eval["iteration"] != run.iteration:
        _evaluate_all(run, round(run.iteration / len(run.train_loader), 4))
    final |= {k: v for k, v in run.last_eval.items() if k.endswith(("_loss", "_error"))}
    return {
        "model": run.cfg.model.name,
        "data": run.cfg.data.name,
        "iterations": run.iteration,
        "epochs": round(run.iteration / len(run.train_loader), 4),
        "final": final,
        "best": run.best,
        "wall_s": round(run.wall_s, 3),
        "img_per_s": round(run.images / max(run.train_s, 1e-9), 1),
        "precision": run.precision,
        "world_size": run.world.world_size,
        "config": dataclasses.asdict(run.cfg),
    }
