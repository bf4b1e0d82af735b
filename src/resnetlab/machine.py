"""Facts about the machine that results and benchmarks record beside their numbers."""

from __future__ import annotations

import functools
import platform


def cpuinfo() -> dict[str, str]:
    """The fields of ``/proc/cpuinfo``, each as its first processor gives it (empty where the
    file is unavailable). Read once: the CPU does not change under a running process."""
    return dict(_cpuinfo())


@functools.cache
def _cpuinfo() -> tuple[tuple[str, str], ...]:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return tuple(fields.items())


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    return cpuinfo().get("model name") or platform.processor() or "unknown CPU"


def cpu_signature() -> str:
    """``family F model M`` from ``/proc/cpuinfo`` (a generic model name hides the generation);
    empty where unavailable."""
    fields = cpuinfo()
    if "cpu family" not in fields or "model" not in fields:
        return ""
    return f"family {fields['cpu family']} model {fields['model']}"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where unavailable)."""
    return set(cpuinfo().get("flags", "").split())


def bf16_words(info: dict) -> str:
    """What the CPU has for bf16 arithmetic, in words: AMX tiles, AVX512-BF16 only, or none.

    ``info`` holds ``cpu_bf16`` and ``cpu_amx`` (``cpu_isa_flags()``, or a benchmark's record).
    """
    if info.get("cpu_amx"):
        return "AMX-BF16"
    if info["cpu_bf16"]:
        return "AVX512-BF16, no AMX"
    return "no bf16 instructions"


def cpu_isa_flags() -> dict[str, bool]:
    """``cpu_bf16`` (AVX512-BF16 or AMX-BF16) and ``cpu_amx`` (AMX-BF16 tiles)."""
    flags = cpu_flags()
    return {"cpu_bf16": bool({"avx512_bf16", "amx_bf16"} & flags), "cpu_amx": "amx_bf16" in flags}


def cpu_isa() -> str:
    """The vector ISA torch's kernels use and the bf16 hardware: ``AVX512, AMX-BF16``."""
    import torch  # a lazy import: the rest of this module reads files only

    return f"{torch.backends.cpu.get_cpu_capability()}, {bf16_words(cpu_isa_flags())}"
