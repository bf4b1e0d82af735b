"""The registry: one list of names, duplicates refused, close matches offered for unknown names."""

import pytest
from torch import nn

import resnetlab
from resnetlab.errors import ConfigError
from resnetlab.models import get_spec, list_models, register_model

IMAGENET = [f"{kind}{d}" for kind in ("resnet", "plain") for d in (18, 34, 50, 101, 152)]
CIFAR = [f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)] + [
    f"plain{d}" for d in (20, 32, 44, 56, 110)
]


def test_every_paper_model_is_registered():
    names = set(list_models())
    assert set(IMAGENET + CIFAR + ["resnet50_signs", "cifar_resnet", "cifar_plain"]) == names


def test_families_and_input_sizes():
    assert {get_spec(n).family for n in IMAGENET} == {"imagenet"}
    assert {get_spec(n).input_size for n in IMAGENET} == {(224, 224)}
    assert {get_spec(n).input_size for n in CIFAR} == {(32, 32)}
    assert get_spec("resnet50_signs").input_size == (64, 64)
    assert get_spec("resnet50_signs").num_classes == 6


def test_list_models_pattern_and_natural_order():
    assert list_models("resnet1*") == [
        "resnet18",
        "resnet101",
        "resnet110",
        "resnet152",
        "resnet1202",
    ]
    assert list_models("plain2*") == ["plain20"]
    assert list_models("nothing*") == []


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model(
            "resnet20", family="cifar", input_size=(32, 32), num_classes=10, description="again"
        )(lambda num_classes=10: nn.Identity())


def test_unknown_name_lists_close_matches():
    with pytest.raises(ConfigError, match=r"unknown model 'resnt50'; did you mean resnet50"):
        resnetlab.create_model("resnt50")
    with pytest.raises(ConfigError, match="unknown model 'xyz'") as err:
        resnetlab.create_model("xyz")
    assert "did you mean" not in str(err.value)


def test_unknown_override_is_a_config_error():
    with pytest.raises(ConfigError, match=r"resnet50_signs.*'shortcut'"):
        resnetlab.create_model("resnet50_signs", shortcut="A")
    with pytest.raises(ConfigError, match="'widht'"):
        resnetlab.create_model("resnet20", widht=3)
