"""Building blocks: shortcuts (options A/B/C) and residual blocks (basic, bottleneck)."""

from resnetlab.nn.blocks import BasicBlock, Bottleneck
from resnetlab.nn.droppath import DropPath
from resnetlab.nn.shortcuts import (
    NORM_OPTIONS,
    SHORTCUT_OPTIONS,
    SHORTCUT_PADS,
    ZeroPadShortcut,
    conv1x1,
    conv3x3,
    make_shortcut,
    norm_layer,
    projection,
)

__all__ = [
    "NORM_OPTIONS",
    "SHORTCUT_OPTIONS",
    "SHORTCUT_PADS",
    "BasicBlock",
    "Bottleneck",
    "DropPath",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "make_shortcut",
    "norm_layer",
    "projection",
]
