"""The GPU suite's first two parts (``gpu_suite.py``): the CUDA tests and ResNet-50 throughput,
and what every part shares: settings taking turns, subprocesses stopped at a limit.

Nothing here times on its own terms: steps come from ``resnetlab.bench.train`` (the run that
``resnetlab train`` builds, and its ``train_step``), windows and statistics from
``resnetlab.bench.timing``, inference from ``resnetlab.bench.infer``. What this adds is the
order: settings take turns window by window, so that a drift of the clocks or of the machine
hits every setting alike, and every part stops at the deadline the suite gives it.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import torch

from resnetlab.analysis import summarize
from resnetlab.atomic import write_text
from resnetlab.bench.infer import bench_infer
from resnetlab.bench.timing import Stats, peak_flops, synchronize, time_windows
from resnetlab.bench.train import make_train_step

REPO = Path(__file__).resolve().parents[1]
TRAIN_ROWS = (
    ("eager fp32", {"precision": "fp32", "channels_last": False}),
    ("bf16 + channels-last", {"precision": "bf16", "channels_last": True}),
    (
        "bf16 + channels-last + torch.compile",
        {"precision": "bf16", "channels_last": True, "compile": True},
    ),
)
INFER_FORMS = ("eager", "folded", "bf16")
INFER_S = {"cuda": 45.0, "cpu": 2.0}  # inference at both batch sizes, no compile (an allowance)
INFER_COMPILE_S = 60.0  # per batch size for the compiled-bf16 form on a GPU (an allowance)
TRAIN_MIN_S = 60.0  # two eager settings on a GPU: warm-up and a round or more
TARGETS = {"img_per_s": 3000.0, "ratio": 3.0}  # issue 17, ResNet-50 bf16 on an H200
PYTEST_CAP_S = 240  # an allowance for the CUDA tests; a run past it is taken as hung


def alternate(
    steps: dict[str, Callable[[], None]], sizes, batch: int, iters: int, deadline: float
) -> dict[str, dict]:
    """Images/s of each step, the settings taking turns in every round until ``deadline``.

    Each setting's first step is timed alone (cuDNN's first calls, torch.compile), then
    ``sizes.warmup`` steps run untimed; each round times ``sizes.windows`` windows of ``iters``
    steps of every setting in turn. At least one round runs, whatever the deadline.

    Returns:
        Per setting: ``first_step_s`` and ``round_img_per_s`` (each round's median window).
    """
    first = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        synchronize(sizes.device)
        first[name] = time.perf_counter() - start
        for _ in range(sizes.warmup):
            step()
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(sizes.rounds):
        if r and time.monotonic() > deadline:
            break
        for name, step in steps.items():
            seconds = time_windows(
                step, warmup=1, windows=sizes.windows, iters=iters, device=sizes.device
            )
            rounds[name].append(Stats.of([batch / s for s in seconds]).median)
    return {n: {"first_step_s": first[n], "round_img_per_s": rounds[n]} for n in steps}


def rate_rows(timing: dict[str, dict], extra: dict[str, dict]) -> list[dict]:
    """One row per setting: the median and spread over rounds, and the ratio to the first row."""
    rows = []
    for name, t in timing.items():
        stats = Stats.of(t["round_img_per_s"])
        rows.append({"setting": name, **extra[name], "img_per_s": stats.to_dict(), **t})
    base = rows[0]["img_per_s"]["median"]
    for row in rows:
        row["ratio"] = row["img_per_s"]["median"] / base
    return rows


def resnet50_part(sizes, limit_s: float) -> dict:
    """Training images/s of the three settings (alternated), then inference at each batch size."""
    deadline = time.monotonic() + limit_s
    infer_s = INFER_S[sizes.device]
    skipped, rows = [], list(TRAIN_ROWS)
    if not sizes.compile_rows:
        rows, why = rows[:2], "dry run: compiling the step takes minutes on a CPU"
        skipped.append(f"{TRAIN_ROWS[2][0]}: {why}")
    elif limit_s < sizes.compile_s + TRAIN_MIN_S + infer_s:
        rows = rows[:2]
        skipped.append(
            f"{TRAIN_ROWS[2][0]}: needs about {sizes.compile_s + TRAIN_MIN_S + infer_s:.0f} s, "
            f"the part has {limit_s:.0f} s"
        )
    common = {"data": "synthetic", "batch_size": sizes.net_batch, "device": sizes.device}
    setups = {
        n: make_train_step(sizes.net, image_size=sizes.net_image, **common, **x) for n, x in rows
    }
    any_setup = next(iter(setups.values()))
    h, w = any_setup.info.image_size
    macs = summarize(any_setup.model, (h, w), any_setup.info.channels).macs
    timing = alternate(
        {n: s.step for n, s in setups.items()},
        sizes,
        sizes.net_batch,
        sizes.steps,
        deadline - infer_s,
    )
    extra = {n: {"precision": s.precision, **s.settings} for n, s in setups.items()}
    del setups, any_setup
    free_memory()
    peak = peak_flops(sizes.device, sizes.peak_size)
    train = rate_rows(timing, extra)
    for row in train:
        row["achieved_flop_per_s"] = 6 * macs * row["img_per_s"]["median"]
        row["peak_fraction"] = row["achieved_flop_per_s"] / peak["flop_per_s"][row["precision"]]
    inference, more = infer_rows(sizes, deadline)
    return {
        "model": sizes.net,
        "image_size": [h, w],
        "batch_size": sizes.net_batch,
        "train_flop_per_image": 6 * macs,
        "peak": peak,
        "train": train,
        "targets": train_targets(train),
        "inference": inference,
        "skipped": skipped + more,
        "windows": {"steps": sizes.steps, "windows": sizes.windows, "rounds": sizes.rounds},
    }


def train_targets(rows: list[dict]) -> dict:
    """The issue's targets against the fastest bf16 row: 3,000 images/s and 3x eager fp32."""
    bf16 = [r for r in rows if r["precision"] == "bf16"]
    if not bf16:
        return {}
    best = max(bf16, key=lambda r: r["img_per_s"]["median"])
    return {
        "best_bf16": best["setting"],
        "img_per_s": best["img_per_s"]["median"],
        "ratio": best["ratio"],
        "reached_img_per_s": best["img_per_s"]["median"] >= TARGETS["img_per_s"],
        "reached_ratio": best["ratio"] >= TARGETS["ratio"],
    }


def infer_rows(sizes, deadline: float) -> tuple[list[dict], list[str]]:
    """``bench_infer`` at each batch size; the compiled form where the time allows it."""
    forms, skipped = INFER_FORMS, []
    need = INFER_S[sizes.device] + INFER_COMPILE_S * len(sizes.infer_batches)
    if not sizes.compile_rows:
        skipped.append("inference compiled-bf16: dry run (compiling takes minutes on a CPU)")
    elif deadline - time.monotonic() < need:
        skipped.append(f"inference compiled-bf16: needs about {need:.0f} s, fewer are left")
    else:
        forms = (*INFER_FORMS, "compiled-bf16")
    results = []
    for batch in sizes.infer_batches:
        r = bench_infer(
            sizes.net,
            batch,
            variants=forms,
            device=sizes.device,
            image_size=sizes.net_image,
            warmup=3,
            iters=sizes.infer_iters,
        )
        r.pop("machine")  # the suite records the machine once
        results.append(r)
        free_memory()
    return results, skipped


def install() -> dict:
    """The checkout installed without its dependencies, so that the machine's torch stays."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    start = time.monotonic()
    code, output, timed_out = run_command([*cmd, "-e", str(REPO)], 300)
    return {
        "command": shlex.join(["pip", *cmd[3:], "-e", "."]),
        "returncode": code,
        "timed_out": timed_out,
        "output_tail": output.splitlines()[-5:],
        "seconds": time.monotonic() - start,
    }


def pytest_part(sizes, out: Path, limit_s: float) -> dict:
    """``pytest`` on the gpu tests in a subprocess, stopped at its limit; counts from JUnit XML."""
    xml, log = out / "pytest.xml", out / "pytest.log"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *sizes.pytest_args,
        "-q",
        "-rfEs",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",  # a module this machine cannot import is reported
        f"--junitxml={xml}",
    ]
    if sizes.pytest_workers and importlib.util.find_spec("xdist"):
        cmd += ["-n", str(sizes.pytest_workers)]
    limit = min(limit_s, PYTEST_CAP_S)
    code, output, timed_out = run_command(cmd, limit, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    write_text(log, output)
    result = {
        "command": shlex.join(["python", *cmd[1:]]),
        "returncode": code,
        "timed_out": timed_out,
    }
    lines = [line for line in output.splitlines() if line.strip()]
    result["summary_line"] = lines[-1] if lines else ""
    if xml.is_file() and not timed_out:
        result.update(junit_counts(xml))
    if timed_out:
        result["status"] = "failed"
        result["reason"] = f"stopped at its limit of {limit:.0f} s"
    elif code != 0 or result.get("failed", 0) or result.get("errors", 0):
        result["status"] = "failed"
    return result


def junit_counts(path: Path) -> dict:
    """Tests, passed, failed, errors, skipped and the failing tests' ids, from pytest's XML."""
    root = ET.parse(path).getroot()  # our own subprocess's file
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {
        k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")
    }
    failing = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {
        "tests": counts["tests"],
        "passed": passed,
        "failed": counts["failures"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
        "failing": failing,
    }


def run_command(cmd: list[str], limit_s: float, **kwargs) -> tuple[int | None, str, bool]:
    """(return code, output, timed out): ``cmd`` in its own process group, killed at the limit."""
    with tempfile.TemporaryFile("w+") as sink:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **kwargs,
        )
        try:
            code, timed_out = proc.wait(timeout=max(limit_s, 1)), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: torchrun and its workers too
            code, timed_out = proc.wait(), True
        sink.seek(0)
        return code, sink.read(), timed_out


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
