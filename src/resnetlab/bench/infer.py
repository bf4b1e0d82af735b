"""Inference latency of one network in several forms, each checked to give the eager outputs.

The forms (``VARIANTS``):

- ``eager``: the model as trained, eval mode, fp32, NCHW: the baseline every ratio is against.
- ``folded``: BN folded into the convs (``resnetlab.nn.fold``), channels-last, fp32.
- ``bf16``: the folded model with bf16 weights and activations (native on CPUs with
  AVX512-BF16/AMX and on GPUs), logits returned in fp32.
- ``compiled``: ``torch.compile`` of the folded channels-last fp32 model with inductor's
  ``freezing`` (weights become constants: pre-packed for oneDNN, conv + ReLU fused); reported
  as unavailable, not raised, when the backend compiler fails.
- ``compiled-bf16``: the same for the bf16 model.
- ``onnxruntime``: the folded model exported with ``resnetlab.export.export_onnx`` and run in
  ONNX Runtime with as many threads as torch uses.

Every timed call takes the same NCHW fp32 batch and returns fp32 logits, so format conversions
are part of what is timed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from resnetlab.bench.timing import Stats, describe_machine, machine_info, time_calls
from resnetlab.errors import check_choice
from resnetlab.models import create_model, get_spec
from resnetlab.nn.fold import fold_batchnorm

VARIANTS = ("eager", "folded", "bf16", "compiled", "compiled-bf16", "onnxruntime")
# Largest |difference| allowed, relative to the largest |logit| of the eager model: fp32 forms
# only reorder arithmetic; bf16 keeps 8 significant bits through every layer.
TOLERANCE = {"bf16": 5e-2, "compiled-bf16": 5e-2}
FP32_TOLERANCE = 1e-4

Forward = Callable[[torch.Tensor], torch.Tensor]


def make_variant(
    name: str, model: nn.Module, example: torch.Tensor, workdir: Path
) -> Forward | str:
    """A function running ``model`` as variant ``name``, or the reason it is unavailable.

    Args:
        name: one of ``VARIANTS``.
        model: the network (any mode; the variants run it in eval mode).
        example: an input batch on the device the variant will run on.
        workdir: where ``onnxruntime`` writes its model file.
    """
    check_choice("variant", name, VARIANTS)
    if name == "eager":
        eager = model.eval()
        return lambda x: eager(x)
    # One image finds the conv -> BN pairs; a whole batch would only hold more activations.
    folded = fold_batchnorm(model, example[:1]).to(memory_format=torch.channels_last)
    if name == "folded":
        return lambda x: folded(x.contiguous(memory_format=torch.channels_last))
    if name == "onnxruntime":
        return _onnxruntime(folded, example, workdir)
    dtype = torch.bfloat16 if name.endswith("bf16") else torch.float32
    folded = folded.to(dtype)
    if name == "bf16":
        return lambda x: folded(x.to(dtype, memory_format=torch.channels_last)).float()
    return _compiled(folded, example, dtype)


def _compiled(folded: nn.Module, example: torch.Tensor, dtype: torch.dtype) -> Forward | str:
    compiled = torch.compile(folded, options={"freezing": True})

    def run(x: torch.Tensor) -> torch.Tensor:
        return compiled(x.to(dtype, memory_format=torch.channels_last)).float()

    try:
        with torch.inference_mode():
            run(example)  # compiles now, outside the timing
    except Exception as err:  # inductor fails in many ways (no C++ compiler, no Triton, ...)
        return f"torch.compile failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return run


def _onnxruntime(folded: nn.Module, example: torch.Tensor, workdir: Path) -> Forward | str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed (pip install 'resnetlab[export]')"
    from resnetlab.export import export_onnx

    cpu_model = folded.to(device="cpu", memory_format=torch.contiguous_format)
    path = export_onnx(cpu_model, example.cpu(), workdir / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same cores torch gets
    providers = ["CPUExecutionProvider"]
    if example.is_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=providers)
    input_name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(None, {input_name: x.cpu().numpy()})
        return torch.from_numpy(out).to(x.device)

    return run


def compare_outputs(got: torch.Tensor, want: torch.Tensor) -> dict:
    """How far ``got`` is from ``want``: the max |difference| relative to max |want|, and the
    share of samples whose top-1 class agrees."""
    got, want = got.float(), want.float()
    scale = max(want.abs().max().item(), 1e-12)
    return {
        "max_rel_err": (got - want).abs().max().item() / scale,
        "top1_agreement": (got.argmax(1) == want.argmax(1)).float().mean().item(),
    }


def measure(
    fn: Forward,
    example: torch.Tensor,
    want: torch.Tensor,
    tolerance: float,
    *,
    warmup: int,
    iters: int,
) -> dict:
    """Time ``fn`` on ``example`` and check its outputs against ``want``.

    Returns:
        ``status`` ("ok", or "mismatch" beyond ``tolerance``), ``latency_ms`` (``Stats``
        fields), ``img_per_s`` (batch / median latency), ``max_rel_err``, ``top1_agreement``
        and ``tolerance``.
    """
    with torch.inference_mode():
        check = compare_outputs(fn(example), want)
        seconds = time_calls(lambda: fn(example), warmup=warmup, iters=iters, device=example.device)
    latency = Stats.of([s * 1e3 for s in seconds])
    return {
        "status": "ok" if check["max_rel_err"] <= tolerance else "mismatch",
        "latency_ms": latency.to_dict(),
        "img_per_s": example.shape[0] / (latency.median / 1e3),
        **check,
        "tolerance": tolerance,
    }


def bench_infer(
    model_name: str,
    batch_size: int,
    *,
    variants: tuple[str, ...] = VARIANTS,
    device: str = "cpu",
    image_size: int | None = None,
    warmup: int = 3,
    iters: int = 10,
    seed: int = 0,
) -> dict:
    """Latency and throughput of ``model_name`` at ``batch_size`` in each of ``variants``.

    Args:
        model_name: a registry name.
        batch_size: images per call.
        variants: names from ``VARIANTS``; ``eager`` is always measured, as the baseline.
        device: ``"cpu"`` or ``"cuda"``.
        image_size: input side; the model's own (224 for ImageNet nets) when ``None``.
        warmup: untimed calls before timing (after any compilation).
        iters: timed calls.
        seed: seeds the weights and the input batch.

    Returns:
        ``model``, ``batch_size``, ``image_size``, ``machine`` and ``variants``: per variant the
        ``measure`` fields plus ``speedup`` (eager median latency / this one), or
        ``{"status": "unavailable", "reason": ...}``.
    """
    for v in variants:
        check_choice("variant", v, VARIANTS)
    spec = get_spec(model_name)
    size = (image_size, image_size) if image_size else spec.input_size
    torch.manual_seed(seed)
    model = create_model(model_name).to(device).eval()
    in_channels = getattr(model, "in_channels", 3)
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(batch_size, in_channels, *size, generator=gen).to(device)
    with torch.inference_mode():
        want = model(example)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("eager", *(v for v in variants if v != "eager")):
            fn = make_variant(name, model, example, Path(tmp))
            if isinstance(fn, str):
                results[name] = {"status": "unavailable", "reason": fn}
                continue
            tolerance = TOLERANCE.get(name, FP32_TOLERANCE)
            results[name] = measure(fn, example, want, tolerance, warmup=warmup, iters=iters)
    base = results["eager"]["latency_ms"]["median"]
    for r in results.values():
        if "latency_ms" in r:
            r["speedup"] = base / r["latency_ms"]["median"]
    return {
        "model": model_name,
        "batch_size": batch_size,
        "image_size": list(size),
        "machine": machine_info(device),
        "variants": results,
    }


def format_infer(result: dict) -> str:
    """The result as an aligned text table, one row per variant."""
    h, w = result["image_size"]
    lines = [
        f"{result['model']}, batch {result['batch_size']}, {h}x{w}, "
        f"on {describe_machine(result['machine'])}",
        f"{'variant':12s} {'median ms':>10s} {'p90 ms':>9s} {'img/s':>8s} {'speedup':>8s} "
        f"{'max rel err':>12s} {'top-1 agree':>12s}  status",
    ]
    for name, r in result["variants"].items():
        if r["status"] == "unavailable":
            lines.append(f"{name:12s} unavailable: {r['reason']}")
            continue
        lat = r["latency_ms"]
        lines.append(
            f"{name:12s} {lat['median']:10.2f} {lat['p90']:9.2f} {r['img_per_s']:8.1f} "
            f"{r['speedup']:7.2f}x {r['max_rel_err']:12.2e} {r['top1_agreement']:12.3f}  "
            f"{r['status']} (tolerance {r['tolerance']:g})"
        )
    return "\n".join(lines)
