"""Running an exported file and comparing it with the eager PyTorch model it came from."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from resnetlab.errors import check_choice

FORMATS = ("onnx", "torchscript")
DEFAULT_TOLERANCE = 1e-4  # max abs difference of fp32 logits that counts as the same model
CHECK_BATCH_SIZES = (1, 3)  # two sizes, so that a batch axis frozen at export time shows up


class ExportMismatch(RuntimeError):
    """The exported model's outputs differ from the eager model's beyond the tolerance."""


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def load_exported(
    path: str | Path, fmt: str | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function that runs an exported model file on a (B, C, H, W) float32 tensor.

    Args:
        path: the exported file.
        fmt: ``"onnx"`` (run in ONNX Runtime on the CPU) or ``"torchscript"``; by default
            ``.onnx`` files are ONNX and any other file is TorchScript.
    """
    path = Path(path)
    fmt = fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")
    check_choice("format", fmt, FORMATS)
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch uses
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(x: torch.Tensor) -> torch.Tensor:
            (out,) = session.run(None, {name: x.detach().cpu().numpy()})
            return torch.from_numpy(out)

        return run_onnx
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream but is still what libtorch (C++) loads.
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        module = torch.jit.load(str(path), map_location="cpu")

    def run_torchscript(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x.cpu())

    return run_torchscript


def random_inputs(
    channels: int,
    image_size: tuple[int, int],
    batch_sizes: Sequence[int] = CHECK_BATCH_SIZES,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Standard-normal inputs, one (B, C, H, W) float32 tensor per batch size.

    Normalised images have about zero mean and unit variance per channel, so these exercise the
    network over the range real inputs cover.
    """
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, channels, *image_size, generator=gen) for b in batch_sizes]


def check_export(
    path: str | Path,
    model: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    fmt: str | None = None,
) -> float:
    """The largest absolute difference between an exported file's outputs and ``model``'s.

    Args:
        path: the ``.onnx`` or TorchScript file.
        model: the eager model it was exported from (run in eval mode, on the CPU).
        inputs: one (B, C, H, W) tensor or several, e.g. ``random_inputs(...)``.
        fmt: the file's format (see ``load_exported``).

    Returns:
        max |exported(x) - model(x)| over every input and every output element.

    Raises:
        ExportMismatch: when an output's shape differs from the eager model's.
    """
    run = load_exported(path, fmt)
    inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    worst = 0.0
    with eval_mode(model), torch.no_grad():
        for x in inputs:
            expected, got = model(x), run(x)
            if got.shape != expected.shape:
                raise ExportMismatch(
                    f"{path}: output shape {tuple(got.shape)} for input {tuple(x.shape)}; "
                    f"the PyTorch model gives {tuple(expected.shape)}"
                )
            worst = max(worst, (got.float() - expected.float()).abs().max().item())
    return worst


def verify_export(
    path: str | Path,
    model: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    fmt: str | None = None,
) -> float:
    """``check_export``, raising ``ExportMismatch`` unless the difference is below ``tolerance``."""
    diff = check_export(path, model, inputs, fmt=fmt)
    if not diff < tolerance:  # also catches NaN
        raise ExportMismatch(
            f"{path}: exported model differs from PyTorch by up to {diff:.3g} "
            f"(tolerance {tolerance:g})"
        )
    return diff
