"""Every registered model: shapes, gradients, exact parameter counts, the paper's variants."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import ConfigError
from resnetlab.models import create_model, get_spec, list_models
from resnetlab.models.resnet import ResNet, cifar_resnet
from resnetlab.nn import BasicBlock, Bottleneck, ZeroPadShortcut
from resnetlab.nn.blocks import _ResidualBlock


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_input(name: str, batch: int = 2) -> torch.Tensor:
    """A batch at the model's own size, but ImageNet nets at 64x64 to stay quick."""
    h, w = get_spec(name).input_size
    if get_spec(name).family == "imagenet":
        h, w = 64, 64
    return torch.randn(batch, 3, h, w)


# REFERENCE.md: our CIFAR build (10 classes) and torchvision's ImageNet counts (option B, V1.5).
PUBLISHED_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts_equal_published(name):
    assert n_params(create_model(name)) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_plain_twin_has_the_same_parameters(depth):
    # Option A shortcuts are parameter-free, so a CIFAR plain net counts exactly the same.
    assert n_params(create_model(f"plain{depth}")) == PUBLISHED_PARAMS[f"resnet{depth}"]


def test_imagenet_plain_twin_lacks_exactly_the_projections():
    res, plain = create_model("resnet50"), create_model("plain50")
    proj = sum(p.numel() for n, p in res.named_parameters() if ".downsample." in n)
    assert n_params(plain) == n_params(res) - proj
    assert not any("downsample" in n for n, _ in plain.named_parameters())


def test_signs_resnet50_matches_the_course_summary():
    # The course's Keras summary: 23,600,006 params, 23,546,886 trainable, 53,120 non-trainable
    # (BN moving mean and variance: PyTorch's running_mean / running_var buffers).
    model = create_model("resnet50_signs")
    running = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert n_params(model) == 23_546_886
    assert running == 53_120
    assert n_params(model) + running == 23_600_006


def test_cifar_builder_takes_any_6n_plus_2():
    assert (
        n_params(cifar_resnet(depth=8))
        < n_params(cifar_resnet(depth=14))
        < PUBLISHED_PARAMS["resnet20"]
    )
    assert n_params(create_model("cifar_resnet", depth=56)) == PUBLISHED_PARAMS["resnet56"]
    assert n_params(create_model("cifar_plain", depth=56)) == PUBLISHED_PARAMS["resnet56"]


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name):
    model = create_model(name, num_classes=7)
    out = model(small_input(name))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([0, 6])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


VARIANTS = [
    ("resnet20", {"shortcut": "B"}),
    ("resnet20", {"shortcut": "C"}),
    ("resnet20", {"preact": True}),
    ("resnet20", {"preact": True, "shortcut": "B"}),
    ("resnet18", {"shortcut": "A"}),
    ("resnet50", {"stride_at": "paper"}),
    ("resnet50", {"shortcut": "A", "preact": True}),
    ("plain18", {"preact": True}),
]


@pytest.mark.parametrize(("name", "overrides"), VARIANTS)
def test_variants_train(name, overrides):
    model = create_model(name, num_classes=5, **overrides)
    F.cross_entropy(model(small_input(name)), torch.tensor([1, 4])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_shortcut_options_place_projections_as_the_paper_says():
    blocks = lambda m: [b for b in m.modules() if isinstance(b, _ResidualBlock)]  # noqa: E731
    a, b, c = (create_model("resnet20", shortcut=o) for o in "ABC")
    assert sum(isinstance(k.downsample, ZeroPadShortcut) for k in blocks(a)) == 2
    assert all(k.downsample is None or isinstance(k.downsample, ZeroPadShortcut) for k in blocks(a))
    assert sum(isinstance(k.downsample, nn.Sequential) for k in blocks(b)) == 2
    assert all(isinstance(k.downsample, nn.Sequential) for k in blocks(c))
    assert n_params(a) < n_params(b) < n_params(c)


def test_option_a_equals_subsample_and_zero_pad():
    x = torch.randn(3, 16, 32, 32)
    expected = torch.zeros(3, 32, 16, 16)
    for i in range(16):
        for r in range(16):
            for s in range(16):
                expected[:, i, r, s] = x[:, i, 2 * r, 2 * s]
    assert torch.equal(ZeroPadShortcut(16, 32, 2)(x), expected)
    assert list(ZeroPadShortcut(16, 32, 2).parameters()) == []


def test_option_a_block_equals_an_independent_computation():
    block = BasicBlock(16, 32, stride=2, shortcut="A").eval()
    for bn in (block.bn1, block.bn2):  # non-trivial BN statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 16, 8, 8)

    def bn(t, m):
        return (t - m.running_mean[:, None, None]) / torch.sqrt(
            m.running_var[:, None, None] + m.eps
        ) * m.weight[:, None, None] + m.bias[:, None, None]

    branch = bn(
        F.conv2d(
            F.relu(bn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1)),
            block.conv2.weight,
            padding=1,
        ),
        block.bn2,
    )
    shortcut = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 4, 4)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(branch + shortcut))


def _zero_branches(model: nn.Module) -> None:
    """Make every residual branch output exactly zero (last BN: scale and shift 0)."""
    with torch.no_grad():
        for m in model.modules():
            last = getattr(m, "_last", None) or ("bn2c" if hasattr(m, "bn2c") else None)
            if last:
                getattr(m, last).weight.zero_()
                getattr(m, last).bias.zero_()


@pytest.mark.parametrize("name", list_models("plain*") + list_models("resnet*"))
def test_plain_twin_has_no_shortcut_path(name):
    # With every branch silenced, only shortcuts can carry the input to the output.
    model = create_model(name).eval()
    _zero_branches(model)
    x1, x2 = small_input(name, 1), small_input(name, 1)
    with torch.no_grad():
        same = torch.equal(model(x1), model(x2))
    assert same == name.startswith("plain")


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet18", "resnet50", "resnet101"])
@pytest.mark.parametrize("preact", [False, True])
def test_zero_init_makes_each_block_identity_then_relu(name, preact):
    model = create_model(name, zero_init_residual=True, preact=preact)
    seen = []

    def check(block, inputs, output):
        x = inputs[0]
        shortcut = (
            x
            if block.downsample is None
            else block.downsample(torch.relu(block.bn1(x)) if preact else x)
        )
        seen.append(torch.equal(output, shortcut if preact else torch.relu(shortcut)))

    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    for b in blocks:
        b.register_forward_hook(check)
    with torch.no_grad():
        model(small_input(name))
    assert len(seen) == len(blocks) and all(seen)


def test_zero_init_identity_blocks_are_exactly_relu():
    model = create_model("resnet20", zero_init_residual=True)
    x = torch.randn(4, 16, 32, 32)
    assert torch.equal(model.layer1[0](x), torch.relu(x))


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet18", "resnet50", "resnet50_signs"])
def test_state_dict_round_trip_is_strict_and_exact(name, tmp_path):
    src = create_model(name).eval()
    src(small_input(name, 4))  # nothing changes in eval mode, but be sure buffers are real
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = create_model(name).eval()
    dst.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True), strict=True)
    x = small_input(name)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_bottleneck_stride_placement():
    paper, v15 = create_model("resnet50", stride_at="paper"), create_model("resnet50")
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert paper.state_dict().keys() == v15.state_dict().keys()


def test_stage_output_shapes_follow_the_paper():
    model = create_model("resnet20")
    x = model.relu(model.bn1(model.conv1(torch.randn(1, 3, 32, 32))))
    shapes = []
    for stage in (model.layer1, model.layer2, model.layer3):
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [
        (16, 32, 32),
        (32, 16, 16),
        (64, 8, 8),
    ]  # §4.2: 32/16/8 maps, 16/32/64 filters


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"name": "resnet20", "num_classes": 0}, "num_classes must be a positive integer; got 0"),
        ({"name": "resnet50_signs", "num_classes": -1}, "num_classes must be a positive integer"),
        ({"name": "resnet20", "shortcut": "D"}, "shortcut must be one of 'A', 'B', 'C'; got 'D'"),
        ({"name": "resnet50", "stride_at": "v2"}, "stride_at must be one of 'paper', 'v1.5'"),
        ({"name": "cifar_resnet", "depth": 21}, r"depth must be 6n\+2 .*got 21"),
        ({"name": "cifar_plain", "depth": 2}, r"depth must be 6n\+2"),
        ({"name": "resnet20", "in_channels": 0}, "in_channels must be a positive integer"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        create_model(**kwargs)


def test_bad_architecture_arguments():
    with pytest.raises(ConfigError, match="block must be one of 'basic', 'bottleneck'"):
        ResNet("wide", (2, 2))
    with pytest.raises(ConfigError, match="layers must give at least one block"):
        ResNet("basic", (2, 0, 2, 2))


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("resnet20", (3, 32, 32)),
        ("resnet20", (2, 1, 32, 32)),
        ("resnet18", (2, 4, 64, 64)),
        ("resnet50_signs", (2, 3, 32, 32)),
    ],
)
def test_wrong_input_shape_raises(name, shape):
    with pytest.raises(ValueError, match=r"input x must have shape \(batch, 3, "):
        create_model(name)(torch.randn(*shape))


def test_in_channels_override_for_grayscale():
    model = create_model("resnet20", in_channels=1, num_classes=3)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
