"""Signal propagation at initialisation: do activations and gradients vanish or explode with depth?

He et al. 2015 ("Deep Residual Learning for Image Recognition", arXiv:1512.03385, §4.1) argue that
the deep plain nets' trouble is not vanishing gradients: with BN the forward signals keep non-zero
variances and the backward gradients healthy norms. We measure both at initialisation, with BN and
without it (``ResNet(norm="none")``), for plain nets and ResNets:

- activations: the standard deviation and the root mean square of the stem's output and of every
  block's output, on one batch in train mode (BN normalises with the batch's own statistics, as in
  the first training step);
- gradients: the L2 norm of every conv and fc weight's gradient after one backward pass of the mean
  cross-entropy on that batch.

Each series is summarised by a log-linear fit, ``ln(value) = intercept + slope * index``: ``slope``
is the decay (< 0) or growth (> 0) per layer, ``exp(slope)`` the factor per layer, ``r2`` the share
of the variance of ``ln(value)`` the line explains. Gradient indices run from the input to the
output over the main-path convs (projection shortcuts and the fc layer left out), so a positive
gradient slope means the gradient shrinks on its way back to the input: it vanishes.

Theory (He et al. 2015b, "Delving Deep into Rectifiers", arXiv:1502.01852, §2.2): a conv whose
weights have variance ``2 / n``, followed by a ReLU, keeps the second moment of the activations
from layer to layer when ``n`` is the fan-in ``k^2 C_in``. Our init (torchvision's) takes the
fan-out ``k^2 C_out``, which keeps the backward signal instead and multiplies the forward second
moment by ``C_in / C_out`` at every conv: 1/2 where the channels double, 3/16 in the CIFAR stem
with RGB input. ``he_prediction`` computes that expectation exactly, zero padding at the borders
included: given ``x``, the mean of ``(w * x)^2`` over zero-mean i.i.d. weights is ``Var(w)`` times
the sum of ``E x^2`` over the window, and a ReLU of a symmetric variable halves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.analysis.netinfo import (
    depth_of,
    is_residual,
    model_label,
    norm_of,
    preserved,
    residual_blocks,
    seeded,
)
from resnetlab.analysis.records import from_json_numbers, json_numbers
from resnetlab.errors import ConfigError
from resnetlab.models.resnet import cifar_resnet

DEFAULT_DEPTHS = (8, 20, 56, 110)
DEFAULT_NORMS = ("bn", "none")


@dataclass(frozen=True)
class LogLinearFit:
    """A least-squares line through ``ln(value)`` against the layer index.

    Attributes:
        slope: change of ``ln(value)`` per layer (< 0 decay, > 0 growth).
        intercept: ``ln(value)`` at index 0 on the line.
        r2: coefficient of determination of the fit (1: every point on the line).
        points: how many values entered the fit (zeros and non-finite values are left out).
    """

    slope: float
    intercept: float
    r2: float
    points: int

    @property
    def factor(self) -> float:
        """The value's factor per layer, ``exp(slope)`` (NaN where the fit is undefined)."""
        return float(np.exp(self.slope))

    def to_dict(self) -> dict:
        """A JSON-ready record (``None`` where the fit is undefined)."""
        return {
            "slope": json_numbers(self.slope),
            "factor_per_layer": json_numbers(self.factor),
            "intercept": json_numbers(self.intercept),
            "r2": json_numbers(self.r2),
            "points": self.points,
        }

    @classmethod
    def from_dict(cls, record: dict) -> LogLinearFit:
        """The fit ``to_dict`` wrote (``None`` read back as NaN)."""
        return cls(
            slope=from_json_numbers(record["slope"]),
            intercept=from_json_numbers(record["intercept"]),
            r2=from_json_numbers(record["r2"]),
            points=int(record["points"]),
        )


def fit_log_linear(values: Sequence[float]) -> LogLinearFit:
    """Fit ``ln(values[i]) = intercept + slope * i`` over the finite, positive values.

    Fewer than two such values give NaN for the slope, intercept and r2.
    """
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 2:
        return LogLinearFit(math.nan, math.nan, math.nan, int(keep.sum()))
    x, log_y = x[keep], np.log(y[keep])
    slope, intercept = np.polyfit(x, log_y, 1)
    residual = log_y - (intercept + slope * x)
    total = float(((log_y - log_y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    return LogLinearFit(float(slope), float(intercept), r2, int(keep.sum()))


@dataclass(frozen=True)
class SignalProfile:
    """Activations and weight gradients of one network at initialisation.

    Attributes:
        label: the model's name in tables and figures (``plain56``, ``resnet56-nobn``).
        depth: weight layers on the main path (the paper's depth).
        residual: ResNet (True) or plain twin (False).
        norm: ``"bn"`` or ``"none"``.
        points: where activations were measured: ``"stem"``, then each block (``layer1.0``).
        activation_std: (P,) std over all elements of each point's output (unbiased).
        activation_rms: (P,) root mean square of each point's output.
        predicted_rms: (P,) the He et al. 2015b prediction for a plain net without BN
            (``he_prediction``), ``None`` for other nets.
        grad_layers: names of the conv and fc weights, in network order.
        grad_norm: (L,) L2 norm of each weight's gradient.
        main_path: indices into ``grad_layers`` of the stem's and the branches' convs (no
            projection shortcut, no fc): the layers ``grad_fit`` runs over.
        activation_fit: log-linear fit of ``activation_std`` against the point index.
        grad_fit: log-linear fit of the main-path conv gradient norms against their index.
        loss: the mean cross-entropy of the batch.
    """

    label: str
    depth: int
    residual: bool
    norm: str
    points: tuple[str, ...]
    activation_std: np.ndarray
    activation_rms: np.ndarray
    predicted_rms: np.ndarray | None
    grad_layers: tuple[str, ...]
    grad_norm: np.ndarray
    main_path: tuple[int, ...]
    activation_fit: LogLinearFit
    grad_fit: LogLinearFit
    loss: float

    def main_path_grads(self) -> np.ndarray:
        """(M,) the gradient norms of the main-path convs, input side first."""
        return self.grad_norm[list(self.main_path)]

    def to_dict(self) -> dict:
        """A JSON-ready record (NaN and infinities as ``None``)."""
        predicted = None if self.predicted_rms is None else json_numbers(self.predicted_rms)
        return {
            "label": self.label,
            "depth": self.depth,
            "residual": self.residual,
            "norm": self.norm,
            "points": list(self.points),
            "activation_std": json_numbers(self.activation_std),
            "activation_rms": json_numbers(self.activation_rms),
            "predicted_rms": predicted,
            "grad_layers": list(self.grad_layers),
            "grad_norm": json_numbers(self.grad_norm),
            "main_path": list(self.main_path),
            "activation_fit": self.activation_fit.to_dict(),
            "grad_fit": self.grad_fit.to_dict(),
            "loss": json_numbers(self.loss),
        }

    @classmethod
    def from_dict(cls, record: dict) -> SignalProfile:
        """The profile ``to_dict`` wrote (``None`` read back as NaN)."""
        predicted = record["predicted_rms"]
        return cls(
            label=record["label"],
            depth=int(record["depth"]),
            residual=bool(record["residual"]),
            norm=record["norm"],
            points=tuple(record["points"]),
            activation_std=from_json_numbers(record["activation_std"]),
            activation_rms=from_json_numbers(record["activation_rms"]),
            predicted_rms=None if predicted is None else from_json_numbers(predicted),
            grad_layers=tuple(record["grad_layers"]),
            grad_norm=from_json_numbers(record["grad_norm"]),
            main_path=tuple(int(i) for i in record["main_path"]),
            activation_fit=LogLinearFit.from_dict(record["activation_fit"]),
            grad_fit=LogLinearFit.from_dict(record["grad_fit"]),
            loss=from_json_numbers(record["loss"]),
        )


def signal_profile(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, label: str | None = None
) -> SignalProfile:
    """Measure one network's activations and weight gradients on one batch.

    The forward pass runs in train mode; afterwards the model is as it was (mode, BN statistics,
    every bit of every parameter), and no ``.grad`` is written.

    Args:
        model: a resnetlab ``ResNet`` (any family, with or without BN).
        images: (B, C, H, W) normalised input batch on the model's device.
        labels: (B,) class indices for the cross-entropy.
        label: the model's name in the record; by default ``model_label(model)``.
    """
    _check_batch(model, images, labels)
    blocks = residual_blocks(model)
    weights = _weights(model)
    stats: list[tuple[str, float, float]] = []

    def measure(name: str, x: torch.Tensor) -> None:
        x = x.detach().double()  # measured at once: an in-place ReLU may overwrite it later
        stats.append((name, x.std().item(), x.pow(2).mean().sqrt().item()))

    handles = [blocks[0][1].register_forward_pre_hook(lambda m, i: measure("stem", i[0]))]
    for name, block in blocks:
        handles.append(block.register_forward_hook(lambda m, i, o, n=name: measure(n, o)))
    with preserved(model):
        model.train()
        for _, p in weights:
            p.requires_grad_(True)
        try:
            loss = F.cross_entropy(model(images), labels)
        finally:
            for handle in handles:
                handle.remove()
        grads = torch.autograd.grad(loss, [p for _, p in weights])
    grad_norm = np.array([g.double().norm().item() for g in grads])
    main = [i for i, (n, _) in enumerate(weights) if _on_main_path(model, n)]
    act_std = np.array([s for _, s, _ in stats])
    return SignalProfile(
        label=label or model_label(model),
        depth=depth_of(model),
        residual=is_residual(model),
        norm=norm_of(model),
        points=tuple(n for n, _, _ in stats),
        activation_std=act_std,
        activation_rms=np.array([r for _, _, r in stats]),
        predicted_rms=he_prediction(model, images) if theory_applies(model) else None,
        grad_layers=tuple(n for n, _ in weights),
        grad_norm=grad_norm,
        main_path=tuple(main),
        activation_fit=fit_log_linear(act_std),
        grad_fit=fit_log_linear(grad_norm[main]),
        loss=loss.item(),
    )


def signal_study(
    images: torch.Tensor,
    labels: torch.Tensor,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    norms: Sequence[str] = DEFAULT_NORMS,
    num_classes: int = 10,
    seed: int = 0,
) -> list[SignalProfile]:
    """Profile plain CIFAR nets and ResNets (§4.2, option A) of several depths at initialisation.

    For each norm and depth, the plain net and the ResNet are built from the same seed, so they
    hold the same weights and differ only in their shortcuts.

    Args:
        images: (B, C, H, W) one normalised batch of real images (32 CIFAR images are enough;
            the cost grows with the batch).
        labels: (B,) their classes.
        depths: CIFAR depths 6n+2.
        norms: ``"bn"`` and/or ``"none"``.
        num_classes: outputs of the nets.
        seed: the seed of every net's initialisation.

    Returns:
        One profile per (norm, depth, plain/residual), in that nesting order.
    """
    profiles = []
    for norm in norms:
        for depth in depths:
            for residual in (False, True):
                with seeded(seed):
                    model = cifar_resnet(
                        depth,
                        num_classes,
                        residual=residual,
                        norm=norm,
                        in_channels=images.shape[1],
                    )
                profiles.append(signal_profile(model, images, labels))
    return profiles


def theory_applies(model: nn.Module) -> bool:
    """Whether ``he_prediction`` holds: a plain net without BN, post-activation blocks and no
    max-pool in the stem (the CIFAR family), every conv followed by a ReLU."""
    return (
        not is_residual(model)
        and norm_of(model) == "none"
        and not getattr(model, "preact", True)
        and isinstance(getattr(model, "maxpool", None), nn.Identity)
    )


@torch.no_grad()
def he_prediction(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """The expected root mean square of the stem's and every block's output at He init.

    The expectation is over the weights' draw (``kaiming_normal_``, fan-out mode, ReLU gain), for
    the given input: it follows the per-pixel second moment through every conv exactly (borders
    included), so it predicts a single net up to the finite-width spread of its own draw.

    Raises:
        ConfigError: the model is not a plain net without BN (``theory_applies``).
    """
    if not theory_applies(model):
        raise ConfigError("he_prediction needs a plain net without BN and without a max-pool stem")
    moment = images.detach().double().pow(2).mean(dim=(0, 1))[None, None]  # (1, 1, H, W)
    moment = _conv_moment(model.conv1, moment) / 2  # ReLU: half of a symmetric variable's moment
    predicted = [moment.mean().item()]
    for _, block in residual_blocks(model):
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            moment = _conv_moment(conv, moment) / 2
        predicted.append(moment.mean().item())
    return np.sqrt(np.array(predicted))


def _conv_moment(conv: nn.Conv2d, moment: torch.Tensor) -> torch.Tensor:
    """E[(w * x)^2] per pixel for He fan-out weights: Var(w) * C_in * (window sum of E x^2)."""
    kh, kw = conv.kernel_size
    variance = 2.0 / (conv.out_channels * kh * kw)  # kaiming_normal_(mode="fan_out", "relu")
    window = torch.ones(1, 1, kh, kw, dtype=moment.dtype, device=moment.device)
    summed = F.conv2d(moment, window, stride=conv.stride, padding=conv.padding)
    return variance * conv.in_channels * summed  # (1, 1, H', W')


def _weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every conv and fc weight, in network order."""
    owners = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    return [
        (n, p)
        for n, p in model.named_parameters()
        if n.endswith(".weight") and n.rsplit(".", 1)[0] in owners
    ]


def _on_main_path(model: nn.Module, name: str) -> bool:
    """A conv of the stem or of a branch: not a projection shortcut, not the classifier."""
    return isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.Conv2d) and (
        ".downsample." not in name
    )


def _check_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.dim() != 4 or labels.shape != (images.shape[0],):
        raise ConfigError(
            f"images must be (B, C, H, W) and labels (B,); got {tuple(images.shape)} and "
            f"{tuple(labels.shape)}"
        )
