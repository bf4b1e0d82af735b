"""Building blocks: shortcuts (options A/B/C) and residual blocks (basic, bottleneck)."""

from resnetlab.nn.blocks import BasicBlock, Bottleneck
from resnetlab.nn.shortcuts import (
    SHORTCUT_OPTIONS,
    ZeroPadShortcut,
    conv1x1,
    conv3x3,
    make_shortcut,
    projection,
)

__all__ = [
    "SHORTCUT_OPTIONS",
    "BasicBlock",
    "Bottleneck",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "make_shortcut",
    "projection",
]
