"""TorchScript export by tracing: a file that libtorch (C++) and ``torch.jit.load`` run.

Tracing records the operations of one forward pass. Our networks have no data-dependent control
flow (the option A shortcut's subsampling and padding depend only on fixed channel counts), so
the trace holds for every batch size; ``check_export`` confirms it on two.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from resnetlab.atomic import atomic_write
from resnetlab.export.check import eval_mode


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Write ``model`` as a traced TorchScript file.

    The model is traced in eval mode and left in the mode it had; the file is written atomically.

    Args:
        model: the network, on the CPU, in fp32.
        example: a (B, C, H, W) input that fixes C, H and W.
        path: the file to write (``.pt``).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated upstream but still the format libtorch loads; the tracer's
        # note about the input check in ``ResNet.forward`` (a Python bool of a shape) is moot
        # because the channel count is fixed by the trace anyway.
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        atomic_write(path, lambda f: torch.jit.save(traced, f))
    return path
