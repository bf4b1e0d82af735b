"""The ``norm`` option of ``ResNet``: ``"none"`` drops every BN and keeps everything else."""

import pytest
import torch
from torch import nn

from resnetlab.errors import ConfigError
from resnetlab.models import create_model
from resnetlab.models.resnet import ResNet, cifar_plain, cifar_resnet
from resnetlab.nn import BasicBlock, Bottleneck, projection
from resnetlab.nn.blocks import _ResidualBlock

CASES = [
    ("resnet20", {}),
    ("plain20", {}),
    ("resnet20", {"shortcut": "B"}),
    ("resnet20", {"preact": True, "shortcut": "C"}),
    ("resnet18", {}),
    ("resnet50", {}),
    ("resnet50", {"preact": True}),
]


def _build(name: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **overrides)


def _is_bn_entry(model: nn.Module, key: str) -> bool:
    owner = model.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(owner, nn.BatchNorm2d)


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_no_norm_drops_exactly_the_batchnorms_and_keeps_the_he_init(name, overrides):
    bn, none = _build(name, **overrides), _build(name, **overrides, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in none.modules())
    kept = {k: v for k, v in bn.state_dict().items() if not _is_bn_entry(bn, k)}
    state = none.state_dict()
    assert list(state) == list(kept)  # every other name (conv1, layer1.0.conv2, fc) unchanged
    for key, value in kept.items():  # the same random draws: He init, untouched by the option
        assert torch.equal(state[key], value), key
    bn_params = sum(
        p.numel() for m in bn.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(none) == count(bn) - bn_params


def test_explicit_bn_is_the_default_bit_for_bit():
    default, explicit = _build("resnet20"), _build("resnet20", norm="bn")
    x = torch.randn(2, 3, 16, 16)
    for key, value in default.state_dict().items():
        assert torch.equal(explicit.state_dict()[key], value)
    with torch.no_grad():
        assert torch.equal(default(x), explicit(x))


def test_no_norm_projection_keeps_the_torchvision_layout():
    with_bn, without = projection(16, 32, 2), projection(16, 32, 2, norm="none")
    assert isinstance(with_bn[1], nn.BatchNorm2d) and isinstance(without[1], nn.Identity)
    assert len(projection(16, 32, 2, norm=None)) == 1  # pre-activation: no slot at all
    model = _build("resnet20", shortcut="B", norm="none")
    assert "layer2.0.downsample.0.weight" in model.state_dict()


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 44, 56, 110])
@pytest.mark.parametrize("residual", [False, True])
def test_nets_without_bn_build_and_run_at_every_depth(depth, residual):
    model = cifar_resnet(depth, residual=residual, norm="none")
    out = model(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert n_convs == depth - 1  # 6n+2 layers: every conv and the fc, no BN in the count


def _shortcut(block: _ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    if block.downsample is None:
        return x
    return block.downsample(torch.relu(block.bn1(x)) if block.preact else x)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("resnet20", {}),
        ("resnet20", {"shortcut": "B"}),
        ("resnet50", {}),
        ("resnet20", {"preact": True}),
    ],
)
def test_zero_init_without_bn_zeroes_the_last_conv_and_starts_each_block_as_its_shortcut(
    name, overrides
):
    model = _build(name, **overrides, norm="none", zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    seen = []

    def check(block, inputs, output):
        expected = _shortcut(block, inputs[0])
        seen.append(torch.equal(output, expected if block.preact else torch.relu(expected)))

    for block in blocks:
        last = block.conv3 if isinstance(block, Bottleneck) else block.conv2
        assert torch.count_nonzero(last.weight) == 0
        assert torch.count_nonzero(block.conv1.weight) > 0
        block.register_forward_hook(check)
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert len(seen) == len(blocks) and all(seen)


def test_zero_init_plain_block_without_bn_outputs_zero():
    block = BasicBlock(16, 16, residual=False, zero_init=True, norm="none")
    assert torch.equal(block(torch.randn(2, 16, 8, 8)), torch.zeros(2, 16, 8, 8))


def test_a_bad_norm_is_one_clear_error():
    with pytest.raises(ConfigError, match="norm must be one of 'bn', 'none'; got 'ln'"):
        ResNet("basic", (1, 1, 1), widths=(16, 32, 64), stem="cifar", norm="ln")
    with pytest.raises(ConfigError, match="norm must be one of"):
        cifar_plain(8, norm=None)
