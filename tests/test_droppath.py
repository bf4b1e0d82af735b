"""Stochastic depth (nn.droppath) and the ResNet's drop_path_rate and widths arguments."""

import pytest
import torch

from resnetlab import create_model
from resnetlab.errors import ConfigError
from resnetlab.models.resnet import ResNet, cifar_resnet
from resnetlab.nn import BasicBlock, DropPath


def test_drop_path_keeps_or_drops_each_sample_whole_and_preserves_the_expected_value():
    torch.manual_seed(0)
    p = 0.25
    x = torch.rand(4000, 3, 2, 2) + 0.5  # positive, so a dropped sample is exactly zero
    out = DropPath(p).train()(x)
    kept = (out != 0).flatten(1)
    assert torch.equal(kept.all(1), kept.any(1))  # all or nothing per sample
    k = kept.all(1)
    torch.testing.assert_close(out[k], x[k] / (1 - p), rtol=0, atol=1e-6)
    n, dropped = len(k), int((~k).sum())
    sd = (n * p * (1 - p)) ** 0.5
    assert abs(dropped - n * p) < 4 * sd  # binomial(n, p) within 4 standard deviations
    # E[out] = x: the mean over many draws of one input converges to it
    y = torch.full((20000, 1), 2.0)
    assert DropPath(p).train()(y).mean().item() == pytest.approx(
        2.0, abs=4 * 2 * (p / (1 - p) / 20000) ** 0.5
    )


def test_drop_path_is_the_identity_in_eval_mode():
    torch.manual_seed(0)
    dropped = create_model("resnet20", drop_path_rate=0.5).eval()
    plain = create_model("resnet20").eval()
    plain.load_state_dict(dropped.state_dict())  # the same state dict names
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(dropped(x), plain(x))


def test_drop_probabilities_decay_linearly_over_depth():
    model = create_model("resnet20", drop_path_rate=0.3)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9
    assert [b.drop_path.p for b in blocks] == pytest.approx([0.3 * l / 9 for l in range(1, 10)])
    assert all(b.drop_path is None for b in create_model("resnet20").modules()
               if isinstance(b, BasicBlock))  # fmt: skip


def test_drop_path_in_training_changes_outputs_and_follows_the_seed():
    model = create_model("resnet20", drop_path_rate=0.5, num_classes=10).train()
    x = torch.randn(8, 3, 16, 16)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    c = model(x)
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("kwargs", [{"drop_path_rate": 1.0}, {"drop_path_rate": -0.1},
                                    {"drop_path_rate": 0.2, "residual": False}])  # fmt: skip
def test_bad_drop_path_rates_are_refused(kwargs):
    with pytest.raises(ConfigError, match="drop_path_rate"):
        create_model("resnet20", **kwargs)


def cifar_params(widths, n, classes=10):
    """The parameter count of a CIFAR ResNet (option A shortcuts), from the architecture."""
    a = widths[0]
    total, cin = 3 * a * 9 + 2 * a, a  # stem conv and its BN
    for w in widths:
        total += cin * w * 9 + w * w * 9 + 4 * w  # first block: two convs, two BNs
        total += (n - 1) * (2 * w * w * 9 + 4 * w)
        cin = w
    return total + cin * classes + classes  # fc


@pytest.mark.parametrize("widths", [(16, 32, 64), (32, 64, 128), (24, 48, 96)])
def test_cifar_widths_give_the_parameter_count_of_the_layout(widths):
    model = cifar_resnet(20, widths=widths)
    assert sum(p.numel() for p in model.parameters()) == cifar_params(widths, 3)
    assert cifar_params((16, 32, 64), 3) == 269722  # ResNet-20: "0.27M" (Table 6)


def test_cifar_widths_are_checked():
    with pytest.raises(ConfigError, match="3 widths"):
        cifar_resnet(20, widths=(16, 32))
    with pytest.raises(ConfigError, match="widths"):
        ResNet("basic", (1, 1, 1), widths=(16, 0, 64), stem="cifar")
