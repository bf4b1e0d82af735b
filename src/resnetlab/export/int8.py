"""Post-training int8 quantization through PyTorch's PT2E flow with the x86 inductor quantizer.

The model is captured with ``torch.export``, annotated by ``X86InductorQuantizer`` (static,
per-channel symmetric int8 weights, per-tensor uint8 activations: its default config), observed on
calibration batches, converted to quantize/dequantize pairs, and compiled by inductor with
freezing, which lowers each pair around a conv or linear to oneDNN's int8 kernels (VNNI on AVX2
and AVX-512 CPUs, AMX where present). The flow lives in ``torchao`` (the ``quant`` extra); without
it ``quantize_int8`` raises ``ConfigError`` saying so.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from copy import deepcopy

import torch
from torch import nn

from resnetlab.errors import ConfigError

Forward = Callable[[torch.Tensor], torch.Tensor]


def quantize_int8(
    model: nn.Module,
    calibration: Iterable[torch.Tensor],
    *,
    compile: bool = True,
    keep_fp32: Sequence[str] = (),
) -> Forward:
    """The int8 form of an eval-mode model.

    Args:
        model: the fp32 model (it is not changed).
        calibration: input batches (B, C, H, W) whose activation ranges set the scales.
        compile: lower to int8 kernels with inductor (needs a C++ compiler); ``False`` returns
            the converted graph that simulates int8 in fp32 (the reference numerics, slow).
        keep_fp32: module names left in fp32 (``"conv1"``, ``"fc"``: the first and last layers,
            which many deployments keep in full precision).

    Returns:
        A function from fp32 inputs (B, C, H, W) to fp32 logits (B, num_classes).

    Raises:
        ConfigError: ``torchao`` is not installed, or no calibration batch was given.
    """
    try:
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError:
        raise ConfigError(
            "int8 quantization needs torchao (pip install 'resnetlab[quant]')"
        ) from None
    batches = list(calibration)
    if not batches:
        raise ConfigError("int8 quantization needs at least one calibration batch")
    model = _unshared_relus(model)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with _quiet():
        graph = torch.export.export(model, (batches[0],), dynamic_shapes=({0: batch},)).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        for name in keep_fp32:
            quantizer.set_module_name_qconfig(name, None)
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for x in batches:  # the observers record each activation's range
                prepared(x)
        converted = convert_pt2e(prepared)
        move_exported_model_to_eval(converted)
    if not compile:
        return _no_grad(converted)
    from torch._inductor import config as inductor_config

    with inductor_config.patch(freezing=True):  # weights become constants, packed for oneDNN
        compiled = torch.compile(converted)
        forward = _no_grad(compiled)
        forward(batches[0])  # compiles now, under the patch
    return forward


class _ReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu(x)


def _unshared_relus(model: nn.Module) -> nn.Module:
    """An eval-mode copy whose ReLUs are function calls. A block calls its one ``nn.ReLU``
    twice (after the first conv and after the addition); the quantizer groups the calls of one
    module into one pattern and refuses it ("more than one output node"), but each call of the
    function is a pattern of its own, so conv + add + ReLU fuse as they should."""
    copy = deepcopy(model).eval()
    for module in list(copy.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, _ReLU())
    return copy


def top1_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """The share of rows of two (N, K) logit tensors whose argmax is the same."""
    return (a.argmax(1) == b.argmax(1)).double().mean().item()


def _no_grad(fn: Callable) -> Forward:
    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return fn(x)

    return forward


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():  # torchao's deprecation notes on every call
        warnings.simplefilter("ignore")
        yield
