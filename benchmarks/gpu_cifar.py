"""The GPU suite's third part (``gpu_suite.py``): CIFAR ResNet-20 on the CIFAR-10 JPEG copy.

``--preset cifar-paper`` as ``resnetlab train`` resolves it, the device-resident loader, the
settings taking turns (``gpu_parts.alternate``); then the paper's 64k-iteration schedule run for
real in a ``resnetlab train`` subprocess when the measured rates say that it ends within the
part's deadline, else its estimate from those rates.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pack_cifar_jpeg
from gpu_parts import alternate, free_memory, rate_rows, run_command
from resnetlab.atomic import write_text
from resnetlab.bench.timing import synchronize
from resnetlab.bench.train import bench_config, endless
from resnetlab.data import load_dataset
from resnetlab.train.distributed import World
from resnetlab.train.loop import evaluate, train_step
from resnetlab.train.run import Run, build_run

CIFAR_ROWS = (
    ("cifar-paper preset (fp32, NCHW)", {}),
    ("bf16 + channels-last", {"precision": "bf16", "channels_last": True}),
)
# The command-line form of each CIFAR setting, for the paper run.
CIFAR_FLAGS = {
    CIFAR_ROWS[0][0]: [],
    CIFAR_ROWS[1][0]: ["--precision", "bf16", "--set", "channels_last=true"],
}
TARGET_S = 300.0  # issue 17: the 64k-iteration schedule in under 5 minutes on one H200


def cifar_part(sizes, limit_s: float, args, work: Path, out: Path) -> dict:
    """ResNet-20 on the JPEG copy: images/s per setting, then the paper schedule or its estimate."""
    deadline = time.monotonic() + limit_s
    os.environ["RESNETLAB_CACHE"] = str(work / "cache")  # decoded arrays: here and in the child
    data = prepare_cifar(args, work)
    runs = {}
    for name, extra in CIFAR_ROWS:
        cfg = bench_config(
            "resnet20",
            preset="cifar-paper",
            data="cifar10-jpeg",
            data_dir=data["root"],
            device=sizes.device,
            batch_size=sizes.cifar_batch,
            **extra,
        )
        runs[name] = build_run(cfg, None, World())
    steps = {name: stepper(run) for name, run in runs.items()}
    timing = alternate(steps, sizes, sizes.cifar_batch, sizes.cifar_steps, deadline)
    evals = {name: eval_seconds(run) for name, run in runs.items()}
    extra = {
        n: {"precision": r.precision, "channels_last": r.cfg.channels_last} for n, r in runs.items()
    }
    rows = rate_rows(timing, extra)
    for row in rows:
        row["eval"] = evals[row["setting"]]
        row["paper_train_s"] = (
            sizes.paper_iterations * sizes.cifar_batch / row["img_per_s"]["median"]
        )
    pick = (
        rows[0]
        if args.paper_setting == "preset"
        else max(rows, key=lambda r: r["img_per_s"]["median"])
    )
    cfg = runs[pick["setting"]].cfg
    del runs, steps
    free_memory()
    e = pick["eval"]
    plan = plan_paper_run(
        pick["img_per_s"]["median"],
        iterations=sizes.paper_iterations,
        batch_size=sizes.cifar_batch,
        evals=sizes.paper_iterations // cfg.eval_every if cfg.eval_every else 1,
        eval_s=e["seconds"],
        final_s=e["seconds"] * (1 + e["train_images"] / e["images"]),
        startup_s=sizes.startup_s,
        left_s=deadline - time.monotonic(),
    )
    plan["setting"] = pick["setting"]
    result = {
        "data": data,
        "model": "resnet20",
        "batch_size": sizes.cifar_batch,
        "rates": rows,
        "plan": plan,
    }
    if plan["fits"]:
        result["paper_run"] = paper_run(sizes, data["root"], pick["setting"], deadline, work, out)
    else:
        result["paper_run"] = {
            "status": "not run",
            "reason": f"estimated {plan['estimate_s']:.0f} s, {plan['left_s']:.0f} s left",
        }
    if result["paper_run"]["status"] == "failed":
        result["status"] = "failed"
    return result


def prepare_cifar(args, work: Path) -> dict:
    """Unpack the zip into ``work`` (or take ``--cifar-dir``), then decode both splits (timed)."""
    if args.cifar_dir is not None:
        root, unpacked = Path(args.cifar_dir), None
    else:
        root = work / "cifar10-jpeg"
        unpacked = pack_cifar_jpeg.unpack(Path(args.cifar_zip), root)
    start = time.perf_counter()
    counts = {
        split: len(load_dataset("cifar10-jpeg", split, root=root)) for split in ("train", "test")
    }
    return {
        "root": str(root),
        "unpack": unpacked,
        "decode_s": time.perf_counter() - start,
        **counts,
    }


def stepper(run: Run) -> Callable[[], None]:
    """The run's next training step on its next batch (as ``bench train`` takes it)."""
    batches = endless(run.train_loader)
    run.model.train()
    return lambda: train_step(run, *next(batches))


def eval_seconds(run: Run) -> dict:
    """Seconds of one evaluation of every eval split (the second pass, after one warm-up)."""
    for _ in range(2):  # the first pass meets the eval shapes for the first time
        start = time.perf_counter()
        for loader in run.eval_loaders.values():
            evaluate(run.model, loader, precision=run.precision, world=run.world)
        synchronize(run.device)
        seconds = time.perf_counter() - start
    images = sum(len(loader.labels) for loader in run.eval_loaders.values())
    return {"seconds": seconds, "images": images, "train_images": len(run.train_eval_loader.labels)}


def plan_paper_run(
    img_per_s: float,
    *,
    iterations: int,
    batch_size: int,
    evals: int,
    eval_s: float,
    final_s: float,
    startup_s: float,
    left_s: float,
    margin: float = 1.15,
) -> dict:
    """Whether the schedule ends within ``left_s``, from the measured rates.

    The estimate: the process start, then ``margin`` x (the steps at ``img_per_s``, ``evals``
    evaluations of ``eval_s`` each, and the final one over the train split as well, ``final_s``).
    Checkpoints and records fall within the margin.
    """
    train_s = iterations * batch_size / img_per_s
    estimate = startup_s + margin * (train_s + evals * eval_s + final_s)
    return {
        "iterations": iterations,
        "train_s": train_s,
        "evals": evals,
        "eval_s": eval_s,
        "estimate_s": estimate,
        "left_s": left_s,
        "fits": estimate <= left_s,
    }


def paper_run(sizes, root: str, setting: str, deadline: float, work: Path, out: Path) -> dict:
    """``resnetlab train --preset cifar-paper`` in a subprocess, stopped at ``deadline``."""
    run_dir = work / "paper-run"
    options = {
        "--model": "resnet20",
        "--data": "cifar10-jpeg",
        "--data-dir": root,
        "--preset": "cifar-paper",
        "--device": sizes.device,
        "--iterations": sizes.paper_iterations,
        "--batch-size": sizes.cifar_batch,
        "--out": run_dir,
    }
    flags = [str(x) for pair in options.items() for x in pair] + CIFAR_FLAGS[setting]
    cmd = [sys.executable, "-m", "resnetlab", "train", *flags]
    start = time.monotonic()
    code, output, timed_out = run_command(cmd, deadline - start)
    result = {
        "command": " ".join(["resnetlab", *cmd[3:]]),
        "setting": setting,
        "returncode": code,
        "process_s": time.monotonic() - start,
        "timed_out": timed_out,
    }
    write_text(out / "paper_run.log", "\n".join(output.splitlines()[-300:]) + "\n")
    summary = run_dir / "summary.json"
    if code == 0 and summary.is_file():
        s = json.loads(summary.read_text())
        write_text(out / "paper_run_summary.json", summary.read_text())
        final = s["final"]
        return result | {
            "status": "ok",
            "iterations": s["iterations"],
            "wall_s": s["wall_s"],
            "img_per_s": s["img_per_s"],
            "precision": s["precision"],
            "test_accuracy": 1 - final["test_error"],
            "train_error": final.get("train_error"),
            "val_error": final.get("val_error"),
            "under_target": s["wall_s"] < TARGET_S,
        }
    done = last_iteration(run_dir / "metrics.jsonl")
    if timed_out:  # the estimate was short: a finding about the estimate, not a failure
        return result | {"status": "stopped", "reason": f"at the budget, iteration {done}"}
    return result | {"status": "failed", "reason": f"exit code {code} after iteration {done}"}


def last_iteration(path: Path) -> int:
    if not path.is_file():
        return 0
    iterations = [json.loads(line).get("iteration", 0) for line in path.read_text().splitlines()]
    return max(iterations, default=0)
