"""Device, numeric precision and determinism settings of a run.

bf16 autocast where the hardware computes in bf16 (recent CPUs, Ampere+ GPUs); fp16 autocast with
loss scaling on older GPUs; fp32 otherwise. Autocast keeps BN, softmax and the loss in fp32.
"""

from __future__ import annotations

import contextlib
import os

import torch

from resnetlab.errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The ``torch.device`` for the config's ``device`` ("auto" = this rank's GPU, else the CPU).

    Raises:
        ConfigError: a device this machine does not have (``check_device``).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else name
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device {name!r}: not a device name (cpu, cuda, cuda:N, mps)") from None
    check_device(device, f"device {name!r}")
    return device


def check_device(device: torch.device, what: str) -> None:
    """Raise ``ConfigError`` (``what``: the option and value, to start the message) unless
    ``device`` is one resnetlab runs on and this machine has: the CPU, a CUDA device of this
    machine, or MPS where it is available. torch knows more device types (``meta``, ``xpu``,
    ...), on which a model either has no data or fails deep inside a library.
    """
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} asked for, but no CUDA device is available")
        count = torch.cuda.device_count()
        if device.index is not None and not 0 <= device.index < count:
            raise ConfigError(f"{what}: this machine has {count} CUDA device(s), 0..{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{what} asked for, but MPS is not available")
    elif device.type != "cpu":
        raise ConfigError(f"{what}: resnetlab runs on cpu, cuda, cuda:N or mps")
    elif device.index not in (None, 0):
        raise ConfigError(f"{what}: there is one CPU device, cpu (or cpu:0)")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` made concrete for ``device``: bf16 if native, else fp16 on CUDA, else fp32."""
    if precision != "auto":
        return precision
    if native_bf16(device):
        return "bf16"
    return "fp16" if device.type == "cuda" else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of the forward pass (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def set_deterministic(enabled: bool) -> None:
    """Deterministic algorithms everywhere (a rerun or a resume gives bit-identical weights)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by cuBLAS
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = not enabled
