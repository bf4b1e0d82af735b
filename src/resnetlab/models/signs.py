"""The deeplearning.ai course's ResNet-50 for 64x64x3 SIGNS hand-sign images (6 classes).

Layer for layer as the course builds it in Keras: zero-padding 3, a 7x7/2 conv, BN, ReLU, a 3x3/2
max-pool, then stages 2-5, each one *convolutional block* (projection shortcut) followed by
*identity blocks*, a 2x2 average pool, flatten and a dense layer. Module names echo the course's
Keras names (``res2a_branch2a`` -> ``stage2.a.branch2a``). Differences from the paper's ResNet-50,
kept on purpose: convolutions keep their biases (the Keras default), max-pool and 1x1 strides use
"valid" padding, and BN uses Keras's epsilon 1e-3 and momentum 0.99.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from resnetlab.errors import ConfigError
from resnetlab.models.registry import register_model

INPUT_SHAPE = (3, 64, 64)


def _bn(channels: int) -> nn.BatchNorm2d:
    # Keras BatchNormalization(axis=3): epsilon 1e-3, moving-average momentum 0.99 (= torch 0.01).
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class IdentityBlock(nn.Module):
    """The course's identity block: input and output have the same shape, so ``y = F(x) + x``.

    Args:
        in_channels: channels of the input (equal to ``filters[2]``).
        filters: (F1, F2, F3) of the 1x1, fxf and 1x1 convs.
        f: size of the middle convolution's window.
    """

    def __init__(self, in_channels: int, filters: tuple[int, int, int], f: int = 3) -> None:
        super().__init__()
        f1, f2, f3 = filters
        if in_channels != f3:
            raise ConfigError(
                f"an identity block needs in_channels == F3; got {in_channels} != {f3}"
            )
        self.branch2a, self.bn2a = nn.Conv2d(in_channels, f1, 1), _bn(f1)
        self.branch2b, self.bn2b = nn.Conv2d(f1, f2, f, padding="same"), _bn(f2)
        self.branch2c, self.bn2c = nn.Conv2d(f2, f3, 1), _bn(f3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn2a(self.branch2a(x)))
        out = self.relu(self.bn2b(self.branch2b(out)))
        out = self.bn2c(self.branch2c(out))
        return self.relu(out + x)


class ConvolutionalBlock(nn.Module):
    """The course's convolutional block: the shape changes, so the shortcut is a 1x1 conv + BN.

    Args:
        in_channels: channels of the input.
        filters: (F1, F2, F3) of the 1x1, fxf and 1x1 convs; the block outputs F3 channels.
        f: size of the middle convolution's window.
        s: stride of the first 1x1 conv and of the shortcut conv.
    """

    def __init__(
        self, in_channels: int, filters: tuple[int, int, int], f: int = 3, s: int = 2
    ) -> None:
        super().__init__()
        f1, f2, f3 = filters
        self.branch2a, self.bn2a = nn.Conv2d(in_channels, f1, 1, stride=s), _bn(f1)
        self.branch2b, self.bn2b = nn.Conv2d(f1, f2, f, padding="same"), _bn(f2)
        self.branch2c, self.bn2c = nn.Conv2d(f2, f3, 1), _bn(f3)
        self.branch1, self.bn1 = nn.Conv2d(in_channels, f3, 1, stride=s), _bn(f3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.bn1(self.branch1(x))
        out = self.relu(self.bn2a(self.branch2a(x)))
        out = self.relu(self.bn2b(self.branch2b(out)))
        out = self.bn2c(self.branch2c(out))
        return self.relu(out + shortcut)


# (filters, stride of the convolutional block, number of identity blocks) per stage.
STAGES = {
    2: ((64, 64, 256), 1, 2),
    3: ((128, 128, 512), 2, 3),
    4: ((256, 256, 1024), 2, 5),
    5: ((512, 512, 2048), 2, 2),
}


class SignsResNet50(nn.Module):
    """ResNet-50 of the deeplearning.ai course, for (B, 3, 64, 64) images.

    Args:
        num_classes: outputs of the dense layer (6 hand signs).
    """

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer; got {num_classes!r}")
        self.zero_pad = nn.ZeroPad2d(3)
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, stride=2), _bn(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        channels, reduction = 64, 4  # timm's feature_info; reductions nominal ("valid" pooling)
        self.feature_info = [{"num_chs": 64, "reduction": 2, "module": "relu"}]
        for stage, (filters, s, identities) in STAGES.items():
            blocks = {"a": ConvolutionalBlock(channels, filters, f=3, s=s)}
            channels, reduction = filters[2], reduction * s
            for k in range(identities):
                blocks["bcdef"[k]] = IdentityBlock(channels, filters, f=3)
            self.add_module(f"stage{stage}", nn.Sequential(OrderedDict(blocks)))
            self.feature_info.append(
                {"num_chs": channels, "reduction": reduction, "module": f"stage{stage}"}
            )
        self.avgpool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything up to the average pool: (B, 3, 64, 64) -> (B, 2048, 2, 2)."""
        if x.dim() != 4 or tuple(x.shape[1:]) != INPUT_SHAPE:
            raise ConfigError(f"input x must have shape (batch, 3, 64, 64); got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.zero_pad(x)))))  # (B, 64, 15, 15)
        x = self.stage2(x)  # (B, 256, 15, 15)
        x = self.stage3(x)  # (B, 512, 8, 8)
        x = self.stage4(x)  # (B, 1024, 4, 4)
        return self.stage5(x)  # (B, 2048, 2, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, flatten and the dense layer: (B, 2048, 2, 2) -> (B, num_classes), or the
        flattened (B, 2048) features with ``pre_logits``."""
        x = self.flatten(self.avgpool(x))  # (B, 2048)
        # Logits: the course's softmax lives in the loss.
        return x if pre_logits else self.fc(x)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, num_classes)


@register_model(
    "resnet50_signs",
    family="signs",
    input_size=(64, 64),
    num_classes=6,
    description="deeplearning.ai course ResNet-50 for 64x64 SIGNS hand signs",
    fixed_input_size=True,  # its 2x2 average pool and flatten fit the 2x2 map of a 64x64 input
)
def resnet50_signs(num_classes: int = 6) -> SignsResNet50:
    """The course's ResNet-50 (identity and convolutional blocks) for SIGNS."""
    return SignsResNet50(num_classes)
