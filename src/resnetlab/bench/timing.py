"""Measuring time, memory and the machine the same way in every benchmark.

Timings follow one recipe: run a few warm-up calls (allocator, oneDNN primitive caches, compile),
then time several windows and report the median and the spread across them, never the best.
On a GPU every window ends with a synchronise so that queued kernels are counted.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata

import torch

from resnetlab.machine import bf16_words, cpu_isa_flags, cpu_model, cpu_signature


@dataclass(frozen=True)
class Stats:
    """Order statistics of repeated measurements.

    Attributes:
        median: the 50th percentile.
        p10: the 10th percentile.
        p90: the 90th percentile.
        min: the smallest sample.
        max: the largest sample.
        n: the number of samples.
    """

    median: float
    p10: float
    p90: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        """The statistics of ``samples`` (at least one)."""
        if not samples:
            raise ValueError("no samples to summarise")
        return cls(
            median=percentile(samples, 50),
            p10=percentile(samples, 10),
            p90=percentile(samples, 90),
            min=min(samples),
            max=max(samples),
            n=len(samples),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (numpy's default method)."""
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work; nothing to wait for on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_windows(
    fn: Callable[[], object],
    *,
    warmup: int,
    windows: int,
    iters: int,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Seconds per call of ``fn``: one value per window of ``iters`` calls, after ``warmup``."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    per_call = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        synchronize(device)
        per_call.append((time.perf_counter() - start) / iters)
    return per_call


def time_calls(
    fn: Callable[[], object], *, warmup: int, iters: int, device: str | torch.device = "cpu"
) -> list[float]:
    """Latency of each of ``iters`` calls of ``fn`` in seconds, after ``warmup`` calls."""
    return time_windows(fn, warmup=warmup, windows=iters, iters=1, device=device)


def peak_rss_mib() -> float:
    """The process's peak resident memory so far, in MiB (``ru_maxrss``: KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def minor_faults() -> int:
    """The process's minor page faults so far (pages the kernel mapped in without I/O, as fresh
    zeroed memory is): ``ru_minflt``."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def current_rss_mib() -> float:
    """The process's resident memory now, in MiB (``/proc/self/statm``; peak where absent)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_gpu_mib(device: str | torch.device) -> float | None:
    """Peak memory the CUDA caching allocator handed out on ``device``, in MiB; None on CPU."""
    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def matmul_flops(
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    n: int | None = None,
    repeats: int = 5,
) -> float:
    """The machine's measured peak: FLOP/s of a large ``n x n`` matmul (median of ``repeats``).

    A square matmul is the most compute-bound thing the machine runs, so its rate is the
    practical ceiling to state a network's achieved FLOP rate against.

    Args:
        dtype: ``torch.float32`` or ``torch.bfloat16`` (or ``torch.float16`` on a GPU).
        device: where to run it.
        n: the matrix size; 2048 on a CPU, 8192 on a GPU when ``None``.
        repeats: timed matmuls after one warm-up.
    """
    if n is None:
        n = 8192 if torch.device(device).type == "cuda" else 2048
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(dtype)
    b = torch.randn(n, n, device=device, generator=gen).to(dtype)
    seconds = time_windows(
        lambda: torch.mm(a, b), warmup=1, windows=repeats, iters=1, device=device
    )
    return 2 * n**3 / Stats.of(seconds).median


def peak_flops(device: str | torch.device = "cpu", n: int | None = None) -> dict:
    """``matmul_flops`` in fp32 and bf16: ``{"size": n, "flop_per_s": {"fp32": r, "bf16": r}}``."""
    if n is None:
        n = 8192 if torch.device(device).type == "cuda" else 2048
    rates = {
        name: matmul_flops(dtype, device, n)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    return {"size": n, "flop_per_s": rates}


def machine_info(device: str | torch.device = "cpu") -> dict:
    """What a benchmark ran on: CPU, cores, threads, GPU, and the versions that matter."""
    info = {
        "cpu": cpu_model(),
        "cpu_signature": cpu_signature(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **cpu_isa_flags(),
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version_of("onnxruntime"),
        "numpy": _version_of("numpy"),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def describe_machine(info: dict) -> str:
    """One line for a Markdown report: the machine and the versions."""
    signature = f" ({info['cpu_signature']})" if info.get("cpu_signature") else ""
    where = info.get("gpu") or f"{info['cpu']}{signature}, {info['logical_cpus']} logical CPUs"
    bf16 = bf16_words(info)
    return (
        f"{where} ({info['cpu_capability']}, {bf16}, {info['torch_threads']} torch threads); "
        f"Python {info['python']}, torch {info['torch']}, onnxruntime {info['onnxruntime']}"
    )


def _version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # the report says so rather than failing
        return "not installed"
