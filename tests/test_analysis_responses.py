"""Layer responses (Figure 7): the hooks measure exactly the BN outputs that follow 3x3 convs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab import ConfigError, ResNet, create_model
from resnetlab.analysis.responses import layer_responses


def _trained_looking(model: nn.Module) -> nn.Module:
    """Give every BN non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def _reference_stds(model, x: torch.Tensor) -> list[float]:
    """The same quantity computed by hand, block by block, for a CIFAR ResNet/plain net."""
    stds = []
    out = model.bn1(model.conv1(x))
    stds.append(out.std().item())
    out = torch.relu(out)
    for stage in (model.layer1, model.layer2, model.layer3):
        for block in stage:
            a = block.bn1(block.conv1(out))
            stds.append(a.std().item())
            b = block.bn2(block.conv2(torch.relu(a)))
            stds.append(b.std().item())
            if block.residual:
                shortcut = out if block.downsample is None else block.downsample(out)
                b = b + shortcut
            out = torch.relu(b)
    return stds


@pytest.mark.parametrize("name", ["cifar_resnet", "cifar_plain"])
def test_responses_equal_a_hand_written_forward(name):
    model = _trained_looking(create_model(name, depth=14, in_channels=1))  # in training mode
    x = torch.randn(6, 1, 16, 16)
    result = layer_responses(model, x)
    model.eval()  # the definition: BN with its running statistics, as at test time
    with torch.no_grad():
        expected = _reference_stds(model, x)
    assert len(result.layers) == 14 - 1  # every conv but the fc is a 3x3 in a CIFAR net
    assert result.std.tolist() == pytest.approx(expected, rel=1e-6)
    assert result.layers[:3] == ("bn1", "layer1.0.bn1", "layer1.0.bn2")


def test_bottleneck_nets_measure_only_the_3x3_layers():
    model = ResNet("bottleneck", (1, 2, 1), widths=(4, 8, 16), stem="imagenet", num_classes=10)
    result = layer_responses(model, torch.randn(2, 3, 64, 64))
    assert len(result.layers) == 1 + 2 + 1  # one 3x3 per bottleneck; the 7x7 stem is not one
    assert all(name.endswith(".bn2") for name in result.layers)


def test_mode_is_restored_and_hooks_removed():
    model = create_model("resnet20")
    model.train()
    layer_responses(model, torch.randn(2, 3, 32, 32))
    assert model.training
    assert not any(m._forward_hooks for m in model.modules())


def test_sorted_is_descending_and_json_ready():
    result = layer_responses(create_model("plain20"), torch.randn(2, 3, 32, 32))
    s = result.sorted_std()
    assert list(s) == sorted(result.std, reverse=True)
    record = result.to_dict()
    assert record["layers"] == list(result.layers) and len(record["std"]) == 19


def test_a_model_without_3x3_conv_and_bn_is_an_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    with pytest.raises(ConfigError, match="no BatchNorm fed by a 3x3"):
        layer_responses(model, torch.randn(2, 1, 4, 4))
