"""Shortcut connections (He et al. 2015, §3.2-3.3).

A residual block adds its input to the output of its branch. When the two differ in shape (more
channels, smaller maps), the shortcut has to change shape too; the paper offers three options:

- **A**: parameter-free. Subsample by taking every ``stride``-th pixel and append zero channels.
- **B**: a 1x1 projection (+ BN) only where the shape changes; identity elsewhere.
- **C**: projections on every shortcut.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import check_choice

SHORTCUT_OPTIONS = ("A", "B", "C")
NORM_OPTIONS = ("bn", "none")
# Where option A's zero channels go: after the input's ("end"), or half before and half after
# ("split", as akamaster/pytorch_resnet_cifar10 does, whose published CIFAR checkpoints need it).
SHORTCUT_PADS = ("end", "split")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BN follows every conv, §3.4)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The normalisation after a conv: a ``BatchNorm2d`` (``"bn"``), or ``nn.Identity`` for
    ``"none"``, which keeps the module names (``bn1``, ``downsample.1``) of the BN nets."""
    check_choice("norm", norm, NORM_OPTIONS)
    return nn.BatchNorm2d(channels) if norm == "bn" else nn.Identity()


class ZeroPadShortcut(nn.Module):
    """Option A: identity with subsampling and extra zero channels; no parameters.

    The paper (§4.2) says only that the added dimensions are zero entries; by default we append
    them after the existing channels. ``pad="split"`` puts half of them (rounded down) before and
    the rest after, as the most used CIFAR reproduction does: the span is the same, but weights
    trained with one placement give wrong answers with the other.

    Args:
        in_channels: channels entering the shortcut.
        out_channels: channels leaving it (at least ``in_channels``).
        stride: subsampling step.
        pad: ``"end"`` or ``"split"`` (see above).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, pad: str = "end") -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"option A cannot reduce channels ({in_channels} -> {out_channels}); use B or C"
            )
        check_choice("shortcut_pad", pad, SHORTCUT_PADS)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, H/s, W/s)
        extra = self.out_channels - self.in_channels
        before = extra // 2 if self.pad == "split" else 0
        return F.pad(x, (0, 0, 0, 0, before, extra - before)) if extra else x  # (B, C_out, ...)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, pad={self.pad!r}"


def projection(
    in_channels: int, out_channels: int, stride: int, norm: str | None = "bn"
) -> nn.Sequential:
    """Options B/C: a 1x1 conv (+ BN), in torchvision's ``downsample`` layout (0: conv, 1: BN).

    Args:
        norm: ``"bn"`` appends a BN, ``"none"`` an ``nn.Identity`` in its place; ``None``
            appends nothing: pre-activation blocks project the already normalised input
            (He et al. 2016).
    """
    layers: list[nn.Module] = [conv1x1(in_channels, out_channels, stride)]
    if norm is not None:
        layers.append(norm_layer(norm, out_channels))
    return nn.Sequential(*layers)


def make_shortcut(
    option: str, in_channels: int, out_channels: int, stride: int, norm: str | None = "bn"
) -> nn.Module | None:
    """The shortcut a block needs; ``None`` means the identity (torchvision's convention).

    Args:
        option: ``"A"``, ``"B"`` or ``"C"`` (§3.3).
        in_channels: channels entering the block.
        out_channels: channels leaving the block.
        stride: the block's spatial stride.
        norm: the projections' normalisation: ``"bn"``, ``"none"`` (an identity in the BN's
            place) or ``None`` (no slot at all: pre-activation blocks).
    """
    check_choice("shortcut", option, SHORTCUT_OPTIONS)
    changes_shape = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes_shape):
        return projection(in_channels, out_channels, stride, norm)
    if option == "A" and changes_shape:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return None
