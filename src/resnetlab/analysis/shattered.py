"""Shattered gradients (Balduzzi et al. 2017, "The Shattered Gradients Problem: If resnets are the
answer, then what is the question?", arXiv:1702.08591).

Balduzzi et al. walk along a line of inputs and look at the gradient of a network's output with
respect to its input. At initialisation the gradients of deep plain nets, with BN or without,
resemble white noise: the correlation between the gradients at neighbouring inputs decays
exponentially with depth (as 2^-L in their analysis). In ResNets it decays sublinearly
(about 1/sqrt(L)), and the gradients stay structured like brown noise. Our measurement:

- **The line**: ``x(t) = (1 - t) a + t b`` at ``points`` equally spaced ``t`` in [0, 1] (default
  256, as the paper's line), ``a`` and ``b`` two inputs of the net's shape: two real images, or
  any two points of input space.
- **The output**: a scalar, by default the sum of the logits. At initialisation no class is
  special: every fixed combination of the logits is a random projection of the pooled features,
  the same in distribution up to its scale, and the sum uses every row of the fc layer rather
  than one. ``output=k`` takes the logit of class ``k`` instead, the natural choice for a trained
  net (softmax ignores the sum of the logits).
- **The gradient** ``g_i``: the derivative of the output with respect to the whole input
  (``C*H*W`` numbers) at ``x(t_i)``, in eval mode, so that every point's gradient is its own (a
  BN in train mode would mix the points of a batch). A BN net uses its running statistics, or
  those of ``calibration`` images measured in one train-mode pass (a net at initialisation still
  holds mean 0 and variance 1, which makes every BN an identity).
- **Autocorrelation** at lag ``k``: the mean over ``i`` of the cosine ``<g_i, g_{i+k}> /
  (|g_i| |g_{i+k}|)``. It is not centred on the mean gradient over the line, so a linear model,
  whose gradient is the same everywhere, scores 1 at every lag; independent random gradients
  (white noise) score about 0 at every lag >= 1 (of order ``1/sqrt(C*H*W)``). The lag-1 value
  is each model's one-number summary.
- **Along the line**: ``df(x(t))/dt = <g_i, b - a>``, the derivative of the net restricted to the
  line: the one-dimensional curve the paper plots for nets with a scalar input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnetlab.analysis.netinfo import describe, preserved, seeded
from resnetlab.analysis.records import from_json_numbers, json_numbers
from resnetlab.errors import ConfigError
from resnetlab.models.resnet import cifar_resnet

DEFAULT_POINTS = 256
DEFAULT_DEPTHS = (8, 20, 56, 110)


@dataclass(frozen=True)
class ShatteredGradients:
    """The input gradients of one network along a line, and their autocorrelation.

    Attributes:
        label: the model's name (``plain56``, ``resnet56-nobn``, or a class name).
        depth: the paper's depth of a resnetlab ResNet, else ``None``.
        residual: ResNet or plain twin (``None`` for other networks).
        norm: ``"bn"`` or ``"none"``.
        output: which scalar was differentiated: ``"sum of logits"`` or ``"logit k"``.
        t: (N,) the positions on the line, 0 at ``a`` and 1 at ``b``.
        along_line: (N,) ``df(x(t))/dt``, the gradient projected on the line's direction.
        autocorrelation: (K + 1,) the mean cosine between gradients ``k`` points apart, k = 0..K.
    """

    label: str
    depth: int | None
    residual: bool | None
    norm: str
    output: str
    t: np.ndarray
    along_line: np.ndarray
    autocorrelation: np.ndarray

    @property
    def lag1(self) -> float:
        """The autocorrelation of neighbouring points (1: smooth, 0: shattered)."""
        return float(self.autocorrelation[1])

    def to_dict(self) -> dict:
        """A JSON-ready record."""
        return {
            "label": self.label,
            "depth": self.depth,
            "residual": self.residual,
            "norm": self.norm,
            "output": self.output,
            "lag1": json_numbers(self.lag1),
            "t": json_numbers(self.t),
            "along_line": json_numbers(self.along_line),
            "autocorrelation": json_numbers(self.autocorrelation),
        }

    @classmethod
    def from_dict(cls, record: dict) -> ShatteredGradients:
        """The record ``to_dict`` wrote (``None`` read back as NaN)."""
        depth = record["depth"]
        return cls(
            label=record["label"],
            depth=None if depth is None else int(depth),
            residual=record["residual"],
            norm=record["norm"],
            output=record["output"],
            t=from_json_numbers(record["t"]),
            along_line=from_json_numbers(record["along_line"]),
            autocorrelation=from_json_numbers(record["autocorrelation"]),
        )


def input_line(
    start: torch.Tensor, end: torch.Tensor, points: int = DEFAULT_POINTS
) -> torch.Tensor:
    """``points`` inputs equally spaced from ``start`` (t = 0) to ``end`` (t = 1).

    Args:
        start: (C, H, W) one input.
        end: (C, H, W) another input of the same shape.

    Returns:
        (points, C, H, W) the inputs ``(1 - t) start + t end``.
    """
    if start.shape != end.shape or start.dim() != 3:
        raise ConfigError(
            f"the line's ends must be two (C, H, W) inputs of one shape; got "
            f"{tuple(start.shape)} and {tuple(end.shape)}"
        )
    if not isinstance(points, int) or points < 2:
        raise ConfigError(f"points must be an integer >= 2; got {points!r}")
    t = torch.linspace(0.0, 1.0, points, dtype=start.dtype, device=start.device)
    t = t[:, None, None, None]  # (N, 1, 1, 1)
    return (1 - t) * start + t * end  # (N, C, H, W)


def line_gradients(
    model: nn.Module, line: torch.Tensor, output: int | None = None, batch_size: int = 64
) -> torch.Tensor:
    """The gradient of the scalar output with respect to the input at every point.

    Args:
        model: any network from (N, C, H, W) to (N, classes); run in eval mode, then restored.
        line: (N, C, H, W) the inputs.
        output: the class whose logit is differentiated; ``None``: the sum of the logits.
        batch_size: points per forward pass (memory only: eval mode keeps points independent).

    Returns:
        (N, C*H*W) one gradient per point, in float32 as the network computes it.
    """
    grads = []
    with preserved(model):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)  # input gradients only: no weight gradients to compute
        for chunk in line.split(batch_size):
            x = chunk.detach().clone().requires_grad_(True)
            logits = model(x)  # (n, classes)
            if output is not None and not 0 <= output < logits.shape[1]:
                raise ConfigError(f"output must be a class index below {logits.shape[1]}")
            scalar = logits.sum() if output is None else logits[:, output].sum()
            (grad,) = torch.autograd.grad(scalar, x)
            grads.append(grad.flatten(1))  # (n, C*H*W)
    return torch.cat(grads)


def gradient_autocorrelation(grads: torch.Tensor, max_lag: int) -> np.ndarray:
    """The mean cosine between gradients ``k`` points apart, for k = 0..max_lag.

    Args:
        grads: (N, D) one gradient per point, in line order.
        max_lag: the largest lag, below N.

    Returns:
        (max_lag + 1,) float64; a zero gradient counts as orthogonal to every other.
    """
    if not 0 < max_lag < len(grads):
        raise ConfigError(f"max_lag must be between 1 and {len(grads) - 1}; got {max_lag}")
    g = grads.detach().double()
    norms = g.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, g / norms.clamp_min(torch.finfo(g.dtype).tiny), 0.0)
    acf = [float((unit * unit).sum(1).mean())]
    for lag in range(1, max_lag + 1):
        acf.append(float((unit[:-lag] * unit[lag:]).sum(1).mean()))
    return np.array(acf)


def shattered_gradients(
    model: nn.Module,
    start: torch.Tensor,
    end: torch.Tensor,
    points: int = DEFAULT_POINTS,
    max_lag: int | None = None,
    output: int | None = None,
    calibration: torch.Tensor | None = None,
    label: str | None = None,
) -> ShatteredGradients:
    """Measure one network's gradients along the line from ``start`` to ``end``.

    Args:
        model: any network from images to logits; it is left exactly as it was.
        start: (C, H, W) the line's first point.
        end: (C, H, W) its last point.
        points: inputs on the line.
        max_lag: the largest lag of the autocorrelation; by default a quarter of ``points``.
        output: the class whose logit is differentiated; ``None``: the sum of the logits.
        calibration: (B, C, H, W) images whose statistics the BN layers use (one train-mode
            pass); ``None`` keeps the running statistics the model has.
        label: the model's name; by default its resnetlab name or its class name.
    """
    line = input_line(start, end, points)
    with preserved(model):
        if calibration is not None:
            calibrate_batchnorm(model, calibration)
        grads = line_gradients(model, line, output)
    name, depth, residual, norm = describe(model)
    direction = (end - start).detach().double().flatten()
    return ShatteredGradients(
        label=label or name,
        depth=depth,
        residual=residual,
        norm=norm,
        output="sum of logits" if output is None else f"logit {output}",
        t=np.linspace(0.0, 1.0, points),
        along_line=(grads.double() @ direction).numpy(),
        autocorrelation=gradient_autocorrelation(grads, max_lag or max(1, points // 4)),
    )


def shattered_study(
    start: torch.Tensor,
    end: torch.Tensor,
    calibration: torch.Tensor | None = None,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    norms: Sequence[str] = ("bn",),
    points: int = DEFAULT_POINTS,
    num_classes: int = 10,
    seed: int = 0,
) -> list[ShatteredGradients]:
    """Plain CIFAR nets and ResNets (§4.2, option A) of several depths at initialisation.

    Each plain net and its ResNet twin are built from the same seed (the same weights).

    Args:
        start: (C, H, W) the line's first point (a real image).
        end: (C, H, W) its last point (another real image).
        calibration: (B, C, H, W) a batch of real images for the BN statistics; ``None`` uses
            the line's own points.
        depths: CIFAR depths 6n+2.
        norms: ``"bn"`` and/or ``"none"``.
        points: inputs on the line.
        num_classes: outputs of the nets.
        seed: the seed of every net's initialisation.

    Returns:
        One record per (norm, depth, plain/residual), in that nesting order.
    """
    if calibration is None:
        calibration = input_line(start, end, points)
    records = []
    for norm in norms:
        for depth in depths:
            for residual in (False, True):
                with seeded(seed):
                    model = cifar_resnet(
                        depth, num_classes, residual=residual, norm=norm, in_channels=start.shape[0]
                    )
                records.append(
                    shattered_gradients(model, start, end, points, calibration=calibration)
                )
    return records


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> None:
    """Set every BN's running statistics to those of ``images`` (one pass in train mode, with a
    cumulative average over that single batch). Changes the model: callers wrap it in
    ``preserved``. A model without BN is left as it is."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    mode = model.training
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: after one batch, that batch's statistics
        model.train()
        model(images)
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        model.train(mode)
