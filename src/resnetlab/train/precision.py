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
        ConfigError: a CUDA or MPS device was asked for and is not there.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but no CUDA device is available")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but MPS is not available")
    return torch.device(name)


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
