"""timm's feature surface: features_only extractors, feature_info, forward_features/forward_head;
and option A's zero-channel placement (shortcut_pad)."""

import pytest
import torch
import torch.nn.functional as F

from resnetlab import ConfigError, ResNet, create_model, list_models
from resnetlab.models.features import FeatureExtractor
from resnetlab.nn import ZeroPadShortcut

# Every family and block, small enough for a CPU test: (name, model, input side).
CASES = [
    ("cifar_resnet", lambda: create_model("cifar_resnet", depth=8), 16),
    ("cifar_plain", lambda: create_model("cifar_plain", depth=8), 16),
    ("resnet18", lambda: create_model("resnet18"), 32),
    # a bottleneck, pre-activation ImageNet-stem net of two thin stages
    ("preact-bottleneck", lambda: ResNet("bottleneck", (1, 2), (8, 16), preact=True), 32),
    ("resnet50_signs", lambda: create_model("resnet50_signs"), 64),
]


def _hooked_outputs(model, x):
    """What forward hooks on every feature_info module see during the normal forward."""
    seen, handles = {}, []
    for entry in model.feature_info:
        module = model.get_submodule(entry["module"])
        # clone: a later in-place op must not change what the hook saw
        hook = lambda m, i, out, name=entry["module"]: seen.setdefault(name, out.clone())  # noqa: E731
        handles.append(module.register_forward_hook(hook))
    logits = model(x)
    for h in handles:
        h.remove()
    return seen, logits


@pytest.mark.parametrize(("name", "build", "side"), CASES, ids=[c[0] for c in CASES])
def test_feature_maps_equal_what_hooks_see_in_the_normal_forward(name, build, side):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, side, side)
    seen, logits = _hooked_outputs(model, x)
    extractor = FeatureExtractor(model, out_indices=tuple(range(len(model.feature_info))))
    assert not hasattr(extractor, "fc")
    with torch.no_grad():
        maps = extractor(x)
    info = extractor.feature_info
    assert len(maps) == len(model.feature_info) == len(info)
    for k, fmap in enumerate(maps):
        assert torch.equal(fmap, seen[info.module_name(k)]), info.module_name(k)
        assert fmap.shape[1] == info.channels(k)
        # the reduction is the total stride, exact for the padded convs of our ResNets
        if name != "resnet50_signs":
            assert fmap.shape[-1] == side // info.reduction(k)
    # forward_head(forward_features(x)) is the forward, and pre_logits is the input of fc
    with torch.no_grad():
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        assert torch.equal(model.forward_head(feats), logits)
        assert torch.equal(model.fc(pooled), logits)
    assert pooled.shape == (2, model.fc.in_features)


def test_feature_info_of_the_paper_nets():
    with torch.device("meta"):
        r50 = create_model("resnet50", features_only=True)
    assert r50.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert r50.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert r50.feature_info.module_name() == ["relu", "layer1", "layer2", "layer3", "layer4"]
    r20 = create_model("resnet20", features_only=True, out_indices=(1, 3))
    assert r20.feature_info.channels() == [16, 64]
    assert r20.feature_info.reduction() == [1, 4]
    assert not hasattr(r20, "fc") and not hasattr(r20, "layer4")
    with torch.device("meta"):
        signs = create_model("resnet50_signs", features_only=True, out_indices=(4,))
    assert signs.feature_info.get_dicts() == [
        {"num_chs": 2048, "reduction": 32, "module": "stage5", "index": 4}
    ]


def test_every_registry_model_has_feature_info_and_a_head():
    for name in list_models():
        if name == "resnet1202":  # resnet110's builder with 1202 layers: slow to build
            continue
        with torch.device("meta"):
            model = create_model(name, **({"depth": 8} if name.startswith("cifar_") else {}))
        assert model.feature_info[-1]["num_chs"] == model.fc.in_features, name
        assert hasattr(model, "forward_head") and hasattr(model, "forward_features"), name


@pytest.mark.parametrize("indices", [(5,), (-1,), (), (1, 1)])
def test_bad_out_indices_are_one_line(indices):
    with pytest.raises(ConfigError, match=r"out_indices must be distinct stage indices in 0\.\.4"):
        create_model("resnet18", features_only=True, out_indices=indices)
    with pytest.raises(ConfigError, match="features_only=True models only"):
        create_model("resnet18", out_indices=(1,))


def test_split_padding_puts_half_the_zero_channels_before_the_input():
    x = torch.randn(2, 16, 8, 8)
    end = ZeroPadShortcut(16, 32, 2)(x)
    split = ZeroPadShortcut(16, 32, 2, pad="split")(x)
    sub = x[:, :, ::2, ::2]
    assert torch.equal(end, torch.cat([sub, torch.zeros(2, 16, 4, 4)], 1))
    assert torch.equal(split, torch.cat([torch.zeros(2, 8, 4, 4), sub, torch.zeros(2, 8, 4, 4)], 1))
    # akamaster's expression for planes = 32
    assert torch.equal(split, F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 32 // 4, 32 // 4)))
    odd = ZeroPadShortcut(4, 7, 1, pad="split")(torch.ones(1, 4, 2, 2))
    assert odd[0, :, 0, 0].tolist() == [0, 1, 1, 1, 1, 0, 0]  # the odd zero goes at the end


def test_shortcut_pad_is_a_model_argument_that_changes_only_option_a():
    torch.manual_seed(0)
    end = create_model("resnet20").eval()
    split = create_model("resnet20", shortcut_pad="split").eval()
    split.load_state_dict(end.state_dict())  # the same parameters: only the padding differs
    pads = [m.pad for m in split.modules() if isinstance(m, ZeroPadShortcut)]
    assert pads == ["split", "split"]  # the first block of stages 2 and 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(end(x), split(x))
    with pytest.raises(ConfigError, match="shortcut_pad must be one of 'end', 'split'"):
        create_model("resnet20", shortcut_pad="both")
