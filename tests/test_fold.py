"""BN folding: the folded net computes the eval-mode function for every block type and shortcut."""

import pytest
import torch
from torch import nn

from resnetlab.models import create_model
from resnetlab.models.resnet import ResNet
from resnetlab.nn.fold import conv_bn_pairs, fold_batchnorm, fold_conv_bn


def randomize_bn(model: nn.Module) -> nn.Module:
    """Give every BN statistics and affine parameters far from the identity, so folding matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
            with torch.no_grad():
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
    return model


def small_bottleneck(**kw) -> ResNet:
    # Widths 16, 32 give 64 and 128 outputs: the 64-channel stem feeds option A without shrinking.
    return ResNet("bottleneck", (2, 2), widths=(16, 32), stem="imagenet", num_classes=7, **kw)


def small_basic(**kw) -> ResNet:
    return create_model("cifar_resnet", depth=8, **kw)


BN_IN = (2, 3, 48, 48)

# (builder, input shape): every block shape x shortcut option, plain, pre-activation, the paper's
# bottleneck stride, zero-init, and the SIGNS net (convs with biases, Keras epsilon).
CASES = {
    "resnet20-A": (lambda: create_model("resnet20"), (3, 3, 32, 32)),
    "basic-B": (lambda: small_basic(shortcut="B"), (3, 3, 32, 32)),
    "basic-C": (lambda: small_basic(shortcut="C"), (3, 3, 32, 32)),
    "basic-plain": (lambda: small_basic(residual=False), (3, 3, 32, 32)),
    "basic-preact-A": (lambda: small_basic(preact=True), (3, 3, 32, 32)),
    "basic-preact-B": (lambda: small_basic(preact=True, shortcut="B"), (3, 3, 32, 32)),
    "basic-zero-init": (lambda: small_basic(zero_init_residual=True), (3, 3, 32, 32)),
    "bottleneck-A": (lambda: small_bottleneck(shortcut="A"), BN_IN),
    "bottleneck-B": (lambda: small_bottleneck(shortcut="B"), BN_IN),
    "bottleneck-C-paper": (lambda: small_bottleneck(shortcut="C", stride_at="paper"), BN_IN),
    "bottleneck-plain": (lambda: small_bottleneck(residual=False), BN_IN),
    "bottleneck-preact-C": (lambda: small_bottleneck(preact=True, shortcut="C"), BN_IN),
    "signs": (lambda: create_model("resnet50_signs"), (2, 3, 64, 64)),
}


def n_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def n_blocks(model: nn.Module) -> int:
    return sum(type(m).__name__ in ("BasicBlock", "Bottleneck") for m in model.modules())


@pytest.mark.parametrize("case", sorted(CASES))
def test_folded_equals_eval_mode_model(case):
    build, shape = CASES[case]
    model = randomize_bn(build())
    x = torch.randn(*shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    folded = fold_batchnorm(model, x)

    with torch.no_grad():
        want = model.eval()(x)
        got = folded(x)
    scale = want.abs().max().item()
    assert scale > 1e-3  # the net is not trivially zero
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * scale)
    # The original is untouched: same tensors (its BN statistics did not move).
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Post-activation nets lose every BN; pre-activation ones keep each block's first BN
    # (it acts on the block input, before any conv) and the final BN.
    expected = n_blocks(model) + 1 if "preact" in case else 0
    assert n_bn(folded) == expected
    assert not folded.training


def test_folded_model_keeps_its_function_in_channels_last():
    model = randomize_bn(create_model("resnet20"))
    x = torch.randn(4, 3, 32, 32)
    folded = fold_batchnorm(model, x).to(memory_format=torch.channels_last)
    with torch.no_grad():
        want = model.eval()(x)
        got = folded(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_pairs_of_a_preact_block_are_conv1_bn2():
    model = small_basic(preact=True, shortcut="B")
    pairs = dict(conv_bn_pairs(model, torch.randn(1, 3, 32, 32)))
    assert pairs["layer1.0.conv1"] == "layer1.0.bn2"
    assert "layer1.0.conv2" not in pairs  # its output goes to the addition
    assert "layer2.0.downsample.0" not in pairs  # pre-activation projections have no BN


def test_pairs_of_a_post_activation_net_cover_every_bn():
    model = small_bottleneck(shortcut="B")
    pairs = conv_bn_pairs(model, torch.randn(1, 3, 48, 48))
    assert ("conv1", "bn1") in pairs
    assert ("layer2.0.downsample.0", "layer2.0.downsample.1") in pairs
    assert sorted(bn for _, bn in pairs) == sorted(
        n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
    )


class ConvReadTwice(nn.Module):
    """conv -> bn, and the conv output also feeds the sum: the BN must not be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv(x)
        return self.bn(c) + c


class ConvReadByDetach(ConvReadTwice):
    """The second reader is invisible to autograd: the output check must catch the bad fold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv(x)
        return self.bn(c) + c.detach()


def test_a_conv_output_with_two_readers_is_not_folded():
    model = randomize_bn(ConvReadTwice())
    x = torch.randn(2, 3, 8, 8)
    assert conv_bn_pairs(model, x) == []
    folded = fold_batchnorm(model, x)
    assert isinstance(folded.bn, nn.BatchNorm2d)


def test_a_reader_autograd_cannot_see_makes_the_check_raise():
    model = randomize_bn(ConvReadByDetach())
    with pytest.raises(RuntimeError, match="BN folding changed the outputs"):
        fold_batchnorm(model, torch.randn(2, 3, 8, 8))


def test_fold_conv_bn_matches_the_formula_with_a_conv_bias():
    conv, bn = nn.Conv2d(4, 6, 3, bias=True), randomize_bn(nn.BatchNorm2d(6)).eval()
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        want = bn(conv(x))
        fold_conv_bn(conv, bn)
        got = conv(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_frozen_parameters_stay_frozen_and_training_mode_is_restored():
    model = small_basic()
    model.conv1.weight.requires_grad_(False)
    conv_bn_pairs(model, torch.randn(1, 3, 32, 32))
    assert model.training
    assert not model.conv1.weight.requires_grad
    assert model.layer1[0].conv1.weight.requires_grad
