"""Facts about the machine that results and benchmarks record beside their numbers."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_signature() -> str:
    """``family F model M`` from ``/proc/cpuinfo`` (a generic model name hides the generation);
    empty where unavailable."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
                if not line.strip():
                    break  # the first processor's block is enough
    except OSError:
        return ""
    if len(fields) < 2:
        return ""
    return f"family {fields['cpu family']} model {fields['model']}"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where unavailable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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
