"""Residual blocks (He et al. 2015, §3.3, Figure 5) and their plain twins.

One class per block shape; every variant is an argument:

- ``residual=False`` removes the shortcut and the addition: the plain twin (§4.1, "plain networks").
- ``preact=True`` moves BN and ReLU before each conv (He et al. 2016, "Identity Mappings"):
  ``y = x + F(x)`` with nothing after the addition.
- ``zero_init=True`` starts the branch's last BN (last conv for pre-activation) at zero, so the
  block begins as the identity (Goyal et al. 2017, §5.1).
- ``drop_path=p`` drops the residual branch of each sample with probability p while training
  (stochastic depth, Huang et al. 2016, arXiv:1603.09382; ``nn.droppath``).
- ``norm="none"`` leaves out every BN (an ``nn.Identity`` stands in its place, so the names of
  the other modules do not change); ``zero_init`` then zeroes the branch's last conv, which has
  the same effect: the branch starts at exactly zero.

Module names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``): state dicts interchange.
"""

from __future__ import annotations

import torch
from torch import nn

from resnetlab.nn.droppath import DropPath
from resnetlab.nn.shortcuts import conv1x1, conv3x3, make_shortcut, norm_layer


class _ResidualBlock(nn.Module):
    """What the two block shapes share: the shortcut, the addition and the final ReLU.

    Subclasses build their convs and BNs, define ``branch`` (the residual function F) and call
    ``_finish_init``.
    """

    expansion = 1

    def _finish_init(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        shortcut: str,
        residual: bool,
        preact: bool,
        zero_init: bool,
        norm: str,
        last_conv: str,
        last_bn: str,
        drop_path: float = 0.0,
    ) -> None:
        self.residual, self.preact = residual, preact
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None  # None: no module added
        self.downsample = (
            make_shortcut(
                shortcut, in_channels, out_channels, stride, norm=None if preact else norm
            )
            if residual
            else None
        )
        self.relu = nn.ReLU(inplace=True)
        # The module whose weight zero-init silences: the last BN, or the last conv where the
        # branch ends in a conv (pre-activation) or has no BN (norm="none").
        self._last = last_conv if preact or norm == "none" else last_bn
        if zero_init:
            self.zero_init_branch()

    def zero_init_branch(self) -> None:
        """Zero the last BN scale of the branch (the last conv if pre-activation or without BN):
        the branch then outputs exactly zero and the block starts as its shortcut."""
        nn.init.zeros_(getattr(self, self._last).weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _drop(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.drop_path is None else self.drop_path(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            act = self.relu(self.bn1(x))
            # He et al. 2016: an identity shortcut carries x itself, a projection the activated x.
            identity = x if self.downsample is None else self.downsample(act)
            out = self._drop(self.branch(act))
            return out + identity if self.residual else out
        identity = x if self.downsample is None else self.downsample(x)
        out = self._drop(self.branch(x))
        if self.residual:
            out = out + identity  # §3.1: the nonlinearity comes after the addition
        return self.relu(out)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions (Figure 5, left).

    Args:
        in_channels: channels of the input.
        channels: channels of both convs; the block outputs ``channels``.
        stride: stride of the first conv.
        shortcut: ``"A"``, ``"B"`` or ``"C"`` where the shape changes (§3.3).
        residual: add the shortcut (``False``: the plain twin).
        preact: pre-activation ordering (He et al. 2016).
        zero_init: zero-init the branch's last BN (or conv, with ``preact`` or without BN).
        stride_at: ignored (a basic block has one place for the stride); accepted for uniformity.
        norm: ``"bn"`` or ``"none"`` (no BatchNorm anywhere in the block).
        drop_path: probability of dropping the branch per sample in training (0 = never).
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        preact: bool = False,
        zero_init: bool = False,
        stride_at: str = "v1.5",
        norm: str = "bn",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = norm_layer(norm, in_channels if preact else channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = norm_layer(norm, channels)
        self._finish_init(
            in_channels,
            out_channels,
            stride,
            shortcut,
            residual,
            preact,
            zero_init,
            norm,
            last_conv="conv2",
            last_bn="bn2",
            drop_path=drop_path,
        )

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # x arrives already normalised and activated by bn1
            return self.conv2(self.relu(self.bn2(self.conv1(x))))
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3, 1x1 restore to 4x the channels (Figure 5, right; §3.3).

    Args:
        in_channels: channels of the input.
        channels: channels of the 1x1 reduce and the 3x3; the block outputs ``4 * channels``.
        stride: the block's spatial stride.
        shortcut: ``"A"``, ``"B"`` or ``"C"`` where the shape changes (§3.3).
        residual: add the shortcut (``False``: the plain twin).
        preact: pre-activation ordering (He et al. 2016).
        zero_init: zero-init the branch's last BN (or conv, with ``preact`` or without BN).
        norm: ``"bn"`` or ``"none"`` (no BatchNorm anywhere in the block).
        stride_at: ``"paper"`` puts the stride on the first 1x1 conv as in the paper; ``"v1.5"`` on
            the 3x3 as torchvision does (more multiply-adds, better accuracy).
        drop_path: probability of dropping the branch per sample in training (0 = never).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        preact: bool = False,
        zero_init: bool = False,
        stride_at: str = "v1.5",
        norm: str = "bn",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        stride1, stride2 = (stride, 1) if stride_at == "paper" else (1, stride)
        self.conv1 = conv1x1(in_channels, channels, stride1)
        self.bn1 = norm_layer(norm, in_channels if preact else channels)
        self.conv2 = conv3x3(channels, channels, stride2)
        self.bn2 = norm_layer(norm, channels)
        self.conv3 = conv1x1(channels, out_channels)
        self.bn3 = norm_layer(norm, channels if preact else out_channels)
        self._finish_init(
            in_channels,
            out_channels,
            stride,
            shortcut,
            residual,
            preact,
            zero_init,
            norm,
            last_conv="conv3",
            last_bn="bn3",
            drop_path=drop_path,
        )

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # x arrives already normalised and activated by bn1
            out = self.relu(self.bn2(self.conv1(x)))
            out = self.relu(self.bn3(self.conv2(out)))
            return self.conv3(out)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))
