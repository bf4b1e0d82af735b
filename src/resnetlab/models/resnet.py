"""The residual networks of He et al. 2015 and their plain twins: one class, variants as arguments.

``ResNet`` builds both families of the paper: the ImageNet nets of Table 1 (7x7 stem, max-pool,
four stages) and the CIFAR nets of §4.2 (3x3 stem, three stages of 2n layers). The builders at the
end are one line per row of the paper's tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from resnetlab.errors import ConfigError, check_choice
from resnetlab.models.registry import register_model
from resnetlab.nn import (
    NORM_OPTIONS,
    SHORTCUT_OPTIONS,
    SHORTCUT_PADS,
    BasicBlock,
    Bottleneck,
    ZeroPadShortcut,
    norm_layer,
)

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
STEMS = ("imagenet", "cifar")
STRIDE_PLACEMENTS = ("paper", "v1.5")


class ResNet(nn.Module):
    """A residual (or plain) network.

    Args:
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1, 4x channels).
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50, ``(3, 3, 3)`` for ResNet-20.
        widths: base channels per stage (the bottleneck outputs 4x these).
        stem: ``"imagenet"`` (7x7/2 conv 64 + 3x3/2 max-pool) or ``"cifar"`` (3x3 conv,
            ``widths[0]`` filters).
        num_classes: outputs of the final fully connected layer.
        in_channels: channels of the input images.
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (§3.3).
        shortcut_pad: where option A's zero channels go: ``"end"`` (after the input's) or
            ``"split"`` (half before, half after: akamaster/pytorch_resnet_cifar10's checkpoints).
        residual: ``False`` gives the plain twin: the same layers, no shortcuts.
        preact: pre-activation blocks (He et al. 2016); adds a final BN + ReLU before pooling.
        zero_init_residual: start each block's branch at zero so that blocks begin as identities.
        stride_at: bottleneck stride on the first 1x1 (``"paper"``) or on the 3x3 (``"v1.5"``).
        norm: ``"bn"`` (BatchNorm after every conv, §3.4) or ``"none"``: no BatchNorm anywhere
            (``nn.Identity`` in each BN's place, so the other names stay), the same He init; for
            studying signal propagation without BN. ``zero_init_residual`` then zeroes each
            branch's last conv.
        drop_path_rate: stochastic depth (Huang et al. 2016, arXiv:1603.09382): the drop
            probability of the last block's branch; block l of L drops with ``rate * l / L``, the
            paper's linear decay rule (0.5 there). Residual nets only; 0 = off.
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str = "B",
        shortcut_pad: str = "end",
        residual: bool = True,
        preact: bool = False,
        zero_init_residual: bool = False,
        stride_at: str = "v1.5",
        norm: str = "bn",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice("block", block, tuple(BLOCKS))
        check_choice("norm", norm, NORM_OPTIONS)
        check_choice("stem", stem, STEMS)
        check_choice("shortcut", shortcut, SHORTCUT_OPTIONS)
        check_choice("shortcut_pad", shortcut_pad, SHORTCUT_PADS)
        check_choice("stride_at", stride_at, STRIDE_PLACEMENTS)
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("in_channels", in_channels)
        if len(layers) != len(widths) or any(n < 1 for n in layers):
            raise ConfigError(
                f"layers must give at least one block for each of the {len(widths)} stages; "
                f"got {tuple(layers)}"
            )
        for width in widths:
            _check_positive_int("widths", width)
        _check_drop_path_rate(drop_path_rate, residual)
        block_cls = BLOCKS[block]
        total_blocks, block_index = sum(layers), 0
        self.in_channels, self.preact = in_channels, preact

        stem_width = 64 if stem == "imagenet" else widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_width, 3, stride=1, padding=1, bias=False)
        # A pre-activation net normalises inside its first block instead (He et al. 2016).
        self.bn1 = nn.Identity() if preact else norm_layer(norm, stem_width)
        self.relu = nn.Identity() if preact else nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        # timm's feature_info: what each stage outputs (channels, total stride, module name).
        reduction = 2 if stem == "imagenet" else 1
        self.feature_info = [{"num_chs": stem_width, "reduction": reduction, "module": "relu"}]
        reduction *= 2 if stem == "imagenet" else 1  # the max-pool

        channels = stem_width
        for i, (blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stage = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1  # subsample at the start of stages 2.. (§3.3)
                block_index += 1  # Huang et al. 2016, §3: p_l = l / L * p_L
                stage.append(
                    block_cls(
                        channels,
                        width,
                        stride,
                        shortcut=shortcut,
                        residual=residual,
                        preact=preact,
                        zero_init=zero_init_residual,
                        stride_at=stride_at,
                        norm=norm,
                        drop_path=drop_path_rate * block_index / total_blocks,
                    )
                )
                channels = width * block_cls.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            reduction *= 2 if i > 0 else 1
            self.feature_info.append(
                {"num_chs": channels, "reduction": reduction, "module": f"layer{i + 1}"}
            )
        self.num_stages = len(layers)
        for m in self.modules():
            if isinstance(m, ZeroPadShortcut):
                m.pad = shortcut_pad

        self.bn_final = norm_layer(norm, channels) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """He init for convs (§3.4, He et al. 2015b); BN starts at scale 1, shift 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # Goyal et al. 2017: each block starts as the identity
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_branch()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything up to the global pool: (B, C_in, H, W) -> (B, C, H/s, W/s)."""
        _check_input(x, self.in_channels)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        if self.preact:
            x = torch.relu(self.bn_final(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global pool and classifier: (B, C, h, w) -> (B, num_classes), or the pooled (B, C)
        features (the input of ``fc``) with ``pre_logits``."""
        x = torch.flatten(self.avgpool(x), 1)  # (B, C)
        return x if pre_logits else self.fc(x)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, num_classes)


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def _check_drop_path_rate(rate: object, residual: bool) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ConfigError(f"drop_path_rate must be a number in [0, 1); got {rate!r}")
    if rate > 0 and not residual:
        raise ConfigError("drop_path_rate needs residual blocks: a plain net has no shortcut")


def _check_input(x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ConfigError(
            f"input x must have shape (batch, {channels}, height, width); got {tuple(x.shape)}"
        )


# ----------------------------------------------------------------------------------------------
# ImageNet family (Table 1). Defaults as torchvision: option B, stride on the 3x3 ("V1.5").
# ----------------------------------------------------------------------------------------------
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
imagenet = register_model(family="imagenet", input_size=(224, 224), num_classes=1000)


def imagenet_resnet(depth: int, num_classes: int = 1000, **overrides: object) -> ResNet:
    """An ImageNet-family net of Table 1 (depth 18, 34, 50, 101 or 152)."""
    check_choice("depth", depth, tuple(IMAGENET_DEPTHS))
    block, layers = IMAGENET_DEPTHS[depth]
    kwargs = {"shortcut": "B", "stride_at": "v1.5", **overrides}
    return ResNet(block, layers, stem="imagenet", num_classes=num_classes, **kwargs)


@imagenet
def resnet18(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet ResNet-18 (basic blocks, Table 1)."""
    return imagenet_resnet(18, num_classes, **overrides)


@imagenet
def resnet34(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet ResNet-34 (basic blocks, Table 1)."""
    return imagenet_resnet(34, num_classes, **overrides)


@imagenet
def resnet50(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet ResNet-50 (bottleneck blocks, Table 1)."""
    return imagenet_resnet(50, num_classes, **overrides)


@imagenet
def resnet101(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet ResNet-101 (bottleneck blocks, Table 1)."""
    return imagenet_resnet(101, num_classes, **overrides)


@imagenet
def resnet152(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet ResNet-152 (bottleneck blocks, Table 1)."""
    return imagenet_resnet(152, num_classes, **overrides)


@imagenet
def plain18(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet plain net-18 (basic blocks, Table 1)."""
    return imagenet_resnet(18, num_classes, **{**overrides, "residual": False})


@imagenet
def plain34(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet plain net-34 (basic blocks, Table 1)."""
    return imagenet_resnet(34, num_classes, **{**overrides, "residual": False})


@imagenet
def plain50(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet plain net-50 (bottleneck blocks, Table 1)."""
    return imagenet_resnet(50, num_classes, **{**overrides, "residual": False})


@imagenet
def plain101(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet plain net-101 (bottleneck blocks, Table 1)."""
    return imagenet_resnet(101, num_classes, **{**overrides, "residual": False})


@imagenet
def plain152(num_classes: int = 1000, **overrides: object) -> ResNet:
    """ImageNet plain net-152 (bottleneck blocks, Table 1)."""
    return imagenet_resnet(152, num_classes, **{**overrides, "residual": False})


# ----------------------------------------------------------------------------------------------
# CIFAR family (§4.2): depth 6n+2, 16/32/64 filters on 32/16/8 maps, option A. Other widths
# (``widths=(32, 64, 128)``, as wide ResNets do) keep the paper's layout.
# ----------------------------------------------------------------------------------------------
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_WIDTHS = (16, 32, 64)  # §4.2: "the numbers of filters are {16, 32, 64}"
cifar = register_model(family="cifar", input_size=(32, 32), num_classes=10)


def check_cifar_depth(depth: object, name: str = "depth") -> int:
    """``depth`` itself if it is 6n+2 with n >= 1 (the CIFAR nets of §4.2), else ``ConfigError``.

    Args:
        depth: the depth to check.
        name: how the user gave it (``--depths``, ``model.overrides.depth``), for the message.
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ConfigError(
            f"{name}: {depth!r} is not 6n+2 (depth must be 6n+2 with n >= 1, "
            f"e.g. 8, 14, 20, 32, 44, 56, 110; got {depth!r})"
        )
    return depth


@cifar
def cifar_resnet(depth: int = 20, num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet of any depth 6n+2 (depth=...) and any three widths (widths=...)."""
    n = (check_cifar_depth(depth) - 2) // 6  # n basic blocks per stage
    kwargs = {"shortcut": "A", "widths": CIFAR_WIDTHS, **overrides}
    widths = kwargs["widths"]
    if not isinstance(widths, (list, tuple)) or len(widths) != len(CIFAR_WIDTHS):
        raise ConfigError(f"widths: a CIFAR net has 3 stages, give 3 widths; got {widths!r}")
    return ResNet("basic", (n, n, n), stem="cifar", num_classes=num_classes, **kwargs)


@cifar
def cifar_plain(depth: int = 20, num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR plain net of any depth 6n+2 (depth=...)."""
    return cifar_resnet(depth, num_classes, **{**overrides, "residual": False})


@cifar
def resnet20(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet-20 (§4.2, Table 6)."""
    return cifar_resnet(20, num_classes, **overrides)


@cifar
def resnet32(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet-32 (§4.2, Table 6)."""
    return cifar_resnet(32, num_classes, **overrides)


@cifar
def resnet44(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet-44 (§4.2, Table 6)."""
    return cifar_resnet(44, num_classes, **overrides)


@cifar
def resnet56(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet-56 (§4.2, Table 6)."""
    return cifar_resnet(56, num_classes, **overrides)


@cifar
def resnet110(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet-110 (§4.2, Table 6)."""
    return cifar_resnet(110, num_classes, **overrides)


@cifar
def resnet1202(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR ResNet-1202 (§4.2, Table 6)."""
    return cifar_resnet(1202, num_classes, **overrides)


@cifar
def plain20(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR plain net-20 (§4.2, Table 6)."""
    return cifar_plain(20, num_classes, **overrides)


@cifar
def plain32(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR plain net-32 (§4.2, Table 6)."""
    return cifar_plain(32, num_classes, **overrides)


@cifar
def plain44(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR plain net-44 (§4.2, Table 6)."""
    return cifar_plain(44, num_classes, **overrides)


@cifar
def plain56(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR plain net-56 (§4.2, Table 6)."""
    return cifar_plain(56, num_classes, **overrides)


@cifar
def plain110(num_classes: int = 10, **overrides: object) -> ResNet:
    """CIFAR plain net-110 (§4.2, Table 6)."""
    return cifar_plain(110, num_classes, **overrides)
