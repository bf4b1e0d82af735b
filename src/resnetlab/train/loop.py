"""The training loop: ``fit`` runs ``train_one_epoch`` until the run's last iteration, and
``evaluate`` measures loss and error. Logging, evaluation and checkpoints happen between steps,
when their intervals come due (``after_step``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from resnetlab.errors import UserError
from resnetlab.nn.views import score_views, tta_views
from resnetlab.train import distributed
from resnetlab.train.cleanup import FolderSnapshot
from resnetlab.train.config import RunConfig
from resnetlab.train.distributed import unwrap
from resnetlab.train.mix import mix_batch
from resnetlab.train.precision import autocast
from resnetlab.train.run import Run, build_run, check_run_folder, save, write_summary
from resnetlab.train.runlock import run_lock


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def fit(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    inputs: Sequence[str | Path | None] = (),
) -> dict[str, Any]:
    """Train a model as ``cfg`` says, writing everything into ``out_dir``.

    A run that fails before its first step leaves no trace: what it created in ``out_dir`` is
    removed (``cleanup``), and nothing that was there before is touched.

    Args:
        cfg: the resolved run config.
        out_dir: the run folder (config.yaml, metrics, checkpoints/, summary.json); it may not
            lie in a run's ``checkpoints/`` or in the dataset's folder (``resnetlab.outputs``).
        resume: continue from ``out_dir/checkpoints/last.pt`` (from the start if there is none).
        inputs: the files ``cfg`` was read from (a config file): the run writes over none of
            them, nor over its ``--weights``.

    Returns:
        The summary, also written to ``out_dir/summary.json``.

    Raises:
        ConfigError: another run is writing to ``out_dir`` (see ``runlock``), or ``out_dir``
            is refused.
    """
    world = distributed.world_from_env()
    out = check_run_folder(out_dir, cfg, [*inputs, cfg.model.weights])
    before = FolderSnapshot.take(out)
    with run_lock(out, enabled=world.main):  # rank 0 writes the folder for every rank
        run, start = None, 0
        try:
            run = build_run(cfg, out, world, resume)
            start = run.iteration
            return _train(run)
        except BaseException:
            if world.main and (run is None or run.iteration == start):
                before.undo()  # it never took a step: leave no trace of it
            raise


def _train(run: Run) -> dict[str, Any]:
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
        TrainingDiverged: the loss or a weight is NaN or infinite.
    """
    run.model.train()
    for images, labels in run.train_loader.epoch(run.epoch, start=run.batch):
        lr = train_step(run, images, labels)
        run.batch += 1
        after_step(run, lr)
        if run.iteration >= run.total:
            return
    run.epoch, run.batch = run.epoch + 1, 0


def train_step(run: Run, images: torch.Tensor, labels: torch.Tensor) -> float:
    """One optimizer step of the run on one batch: the step ``resnetlab train`` takes and
    ``resnetlab bench train`` times.

    The learning rate comes from the schedule; with mixup or cutmix on, the batch is blended with
    a permutation of itself (``train.mix``) and the targets are class probabilities; the loss is
    the cross-entropy with the config's label smoothing, and a batch's errors are counted against
    each image's largest target. The weight EMA, if any, is updated after the optimizer step.
    The loss sum and errors stay on the device (``IntervalMeter``). The host
    waits for the device only while the ResNet-110 warm-up rule watches the batch error, and
    when gradient norms are recorded.

    Returns:
        The learning rate of the step.
    """
    tic = time.perf_counter()
    model, optimizer, scaler = run.model, run.optimizer, run.scaler
    lr = run.schedule.lr_at(run.iteration)
    for group in optimizer.param_groups:  # the backbone's share of the rate (fine-tuning)
        group["lr"] = lr * group.get("lr_scale", 1.0)
    targets = labels  # (B,) class indices, or (B, K) probabilities once mixed
    d = run.cfg.data
    if d.mixup_alpha > 0 or d.cutmix_alpha > 0:
        with record_function("data"):
            images, targets = mix_batch(
                images, labels, len(run.info.classes), mixup_alpha=d.mixup_alpha,
                cutmix_alpha=d.cutmix_alpha, seed=run.cfg.seed, epoch=run.epoch,
                batch=run.batch, rank=run.world.rank,
            )  # fmt: skip
            labels = targets.argmax(1)  # (B,) each image's largest share, for the error count
    # The phases carry profiler labels (benchmarks/profile_step.py); they cost microseconds.
    with record_function("forward"), autocast(run.precision, run.device):
        logits = model(images)  # (B, num_classes)
    with record_function("loss"):
        loss = F.cross_entropy(
            logits.float(), targets, label_smoothing=run.cfg.optim.label_smoothing
        )
        errors = (logits.argmax(1) != labels).sum()  # before any weight changes
    with record_function("backward"):
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
    every = run.cfg.grad_norms_every
    if every and (run.iteration + 1) % every == 0:
        scaler.unscale_(optimizer)
        run.log.grad_norms(run.iteration + 1, grad_norms(model))
    with record_function("optimizer"):
        scaler.step(optimizer)
        scaler.update()
        if run.ema is not None:
            run.ema.update(unwrap(model))
    if not run.schedule.rule_done:  # the ResNet-110 warm-up reads each global batch's error
        wrong, n = distributed.all_reduce_sum(
            torch.tensor([errors.item(), len(labels)], dtype=torch.float64), run.world
        ).tolist()
        run.schedule.observe(wrong / n)
    seconds = time.perf_counter() - tic
    with record_function("statistics"):
        run.meter.add(
            loss.detach().double() * len(labels), errors, len(labels), run.iteration, seconds
        )
    run.iteration += 1
    run.train_s += seconds
    run.images += len(labels) * run.world.world_size  # every rank takes an equal share
    return lr


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    precision: str = "fp32",
    world: distributed.World | None = None,
    tta: str | None = None,
) -> dict[str, float]:
    """Mean cross-entropy (no label smoothing) and error of ``model`` on every sample of a loader.

    The model runs in eval mode (BN uses its running statistics) and is put back as it was. In a
    distributed run each rank passes its shard and the sums are added up across ranks. With
    ``tta="flip"`` each image is scored by the softmax averaged over it and its mirror image
    (the averaging of ``resnetlab eval --tta flip``), with ``"flip-shift"`` over those two and
    both moved 2 pixels either way (``nn.views.tta_views``); the loss is that average's
    cross-entropy.

    Returns:
        {"loss": ..., "error": ...}, the error as a fraction in [0, 1].
    """
    world = world or distributed.World()
    plain = unwrap(model)  # no DDP: ranks may hold different numbers of eval batches
    was_training = plain.training
    plain.eval()
    totals, count = None, 0  # loss sum and errors on the device (no host sync per batch); images
    for images, labels in loader.epoch(0):
        with autocast(precision, images.device):
            if tta is not None:  # log of the mean softmax: the loss and argmax of the average
                logits = score_views(plain, tta_views(images, tta))  # (B, num_classes)
            else:
                logits = plain(images).float()  # (B, num_classes)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        wrong = (logits.argmax(1) != labels).sum()
        batch = torch.stack([loss.double(), wrong.double()])
        totals = batch if totals is None else totals + batch
        count += len(labels)
    plain.train(was_training)
    local = torch.zeros(2, dtype=torch.float64) if totals is None else totals.cpu()
    sums = torch.cat([local, torch.tensor([float(count)], dtype=torch.float64)])
    loss_sum, errors, count = distributed.all_reduce_sum(sums, world).tolist()
    return {"loss": loss_sum / count, "error": errors / count}


def after_step(run: Run, lr: float) -> None:
    """Log, evaluate and checkpoint when their intervals come due (and at the end of the run).

    Before anything is evaluated or written, the device's running statistics are read: a
    non-finite loss since the last read stops the run, naming its first iteration.
    """
    cfg, it = run.cfg, run.iteration
    epoch_done = run.batch == len(run.train_loader)
    run_done = it >= run.total
    epochs = round(it / len(run.train_loader), 4)
    run.log.step(it)
    log_due = it % cfg.log_every == 0 or run_done
    eval_due = it % cfg.eval_every == 0 if cfg.eval_every else epoch_done
    last_due = it % cfg.checkpoint_every == 0 if cfg.checkpoint_every else epoch_done
    if not (log_due or eval_due or last_due or run_done):
        return
    sync_meter(run)
    if log_due:
        record = {"kind": "train", "iteration": it, "epoch": epochs, "lr": lr}
        run.log.write(record | run.meter.read(run.world) | {"wall_s": round(run.wall_s, 3)})
    if (eval_due or last_due or run_done) and not _all_finite(run.model):
        raise _diverged(run, "a weight is no longer finite", lr)  # and no checkpoint has it
    is_best = _evaluate_all(run, epochs) if eval_due or run_done else False
    if last_due or run_done or is_best:
        save(run, last=last_due or run_done, best=is_best)


def sync_meter(run: Run) -> None:
    """Bring the device's running statistics to the host; stop the run on a non-finite loss.

    Raises:
        TrainingDiverged: a step since the last read had a NaN or infinite loss.
    """
    run.train_s += run.meter.flush(run.world)
    bad = run.meter.first_bad_step(run.world)
    if bad is not None:
        at, loss = bad
        raise _diverged(run, f"the loss is {loss}", run.schedule.lr_at(at), at)


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
    model = evaluated_model(run)
    record: dict[str, Any] = {"kind": "eval", "iteration": run.iteration, "epoch": epochs}
    for split, loader in run.eval_loaders.items():
        m = evaluate(model, loader, precision=run.precision, world=run.world, tta=run.cfg.eval_tta)
        record |= {f"{split}_loss": m["loss"], f"{split}_error": m["error"]}
    record["wall_s"] = round(run.wall_s, 3)
    run.log.write(record)
    run.last_eval = record
    metric = "val_error" if "val" in run.eval_loaders else "test_error"
    if run.best is not None and record[metric] >= run.best["value"]:
        return False
    run.best = {"metric": metric, "value": record[metric]} | record
    return True


def evaluated_model(run: Run) -> nn.Module:
    """The weights evaluations measure: the EMA's where the run keeps one, else the model's."""
    if run.ema is None:
        return run.model
    distributed.broadcast_buffers(run.ema.module, run.world)
    return run.ema.module


def _all_finite(model: nn.Module) -> bool:
    return all(bool(t.isfinite().all()) for t in unwrap(model).state_dict().values())


def _diverged(run: Run, what: str, lr: float, iteration: int | None = None) -> TrainingDiverged:
    last = run.checkpoints / "last.pt"
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written"
    at = run.iteration if iteration is None else iteration
    return TrainingDiverged(
        f"training diverged: {what} at iteration {at} (lr {lr:g}); {kept}; try a lower --lr"
    )


def _summary(run: Run) -> dict[str, Any]:
    final = {}
    if run.cfg.eval_train_at_end:
        m = evaluate(
            evaluated_model(run), run.train_eval_loader, precision=run.precision,
            world=run.world, tta=run.cfg.eval_tta,
        )  # fmt: skip
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
