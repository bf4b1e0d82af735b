"""Checkpoints and weight files: atomic, safe to load, rebuild the exact model, clear errors."""

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from resnetlab.errors import CheckpointError, ConfigError
from resnetlab.models import build_model, check_input_size, create_model
from resnetlab.train.checkpoint import (
    FORMAT,
    load_checkpoint,
    rng_state,
    seal,
    set_rng_state,
    write_checkpoint,
)
from resnetlab.train.distributed import unwrap
from resnetlab.train.weights import (
    load_torchvision_weights,
    load_weights,
    model_from_checkpoint,
    save_weights,
)

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from torchvision_weights import fixed_input, weight_for  # noqa: E402


def _checkpoint(model, name="cifar_resnet", overrides=None, iteration=7, in_channels=1):
    return seal(
        {
            "format": FORMAT,
            "version": "test",
            "model": {
                "name": name,
                "overrides": overrides if overrides is not None else {"depth": 8},
                "num_classes": 10,
                "in_channels": in_channels,
            },
            "data": {
                "name": "digits",
                "classes": [str(d) for d in range(10)],
                "image_size": [16, 16],
                "channels": in_channels,
                "mean": [0.5] * in_channels,
                "std": [0.25] * in_channels,
            },
            "config": {},
            "state": {"model": model.state_dict()},
            "progress": {"iteration": iteration},
        }
    )


def _tiny(in_channels=1):
    torch.manual_seed(1)
    return build_model("cifar_resnet", 10, in_channels, {"depth": 8})


def test_model_from_checkpoint_rebuilds_the_same_function(tmp_path):
    model = _tiny().eval()
    with torch.no_grad():  # move BN statistics away from their initial values
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    write_checkpoint(tmp_path, _checkpoint(model), last=True, best=False, keep_last=1)
    rebuilt, ckpt = model_from_checkpoint(tmp_path / "last.pt")
    x = torch.randn(3, 1, 16, 16)
    assert not rebuilt.training
    assert ckpt["data"]["classes"][3] == "3"
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_a_run_folder_resolves_to_its_last_checkpoint(tmp_path):
    model = _tiny()
    write_checkpoint(
        tmp_path / "checkpoints", _checkpoint(model), last=True, best=False, keep_last=0
    )
    assert load_checkpoint(tmp_path)["progress"]["iteration"] == 7
    with pytest.raises(CheckpointError, match=r"no checkpoints/last.pt"):
        load_checkpoint(tmp_path / "checkpoints")


def test_write_checkpoint_keeps_the_last_k_steps_and_best(tmp_path):
    model = _tiny()
    for it in (10, 20, 30, 40):
        write_checkpoint(
            tmp_path, _checkpoint(model, iteration=it), last=True, best=it == 20, keep_last=2
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "last.pt", "step-00000030.pt", "step-00000040.pt"]
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["iteration"] == 40
    assert load_checkpoint(tmp_path / "best.pt")["progress"]["iteration"] == 20


def test_best_alone_leaves_last_untouched(tmp_path):
    model = _tiny()
    write_checkpoint(tmp_path, _checkpoint(model, iteration=5), last=True, best=False, keep_last=3)
    write_checkpoint(tmp_path, _checkpoint(model, iteration=6), last=False, best=True, keep_last=3)
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["iteration"] == 5
    assert load_checkpoint(tmp_path / "best.pt")["progress"]["iteration"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "step-00000005.pt"]


def test_load_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        load_checkpoint(corrupt)
    plain = tmp_path / "plain.pt"
    torch.save(_tiny().state_dict(), plain)
    with pytest.raises(CheckpointError, match="not a resnetlab checkpoint"):
        load_checkpoint(plain)
    write_checkpoint(tmp_path, _checkpoint(_tiny()), last=True, best=False, keep_last=0)
    with pytest.raises(CheckpointError, match="checkpoint of model 'cifar_resnet', not 'resnet20'"):
        load_checkpoint(tmp_path / "last.pt", model="resnet20")


class _Payload:
    """Unpickling this would create a file: the safe loader must refuse before that."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "x": _Payload(target)}, evil)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_weights(_tiny(), evil)
    assert not target.exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_weights_round_trip(tmp_path, suffix):
    model = _tiny()
    save_weights(model, tmp_path / f"w{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [f"w{suffix}"]  # no temporary left behind
    other = build_model("cifar_resnet", 10, 1, {"depth": 8})
    load_weights(other, tmp_path / f"w{suffix}")
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_weights(_tiny(), tmp_path / "w.safetensors")
    with pytest.raises(
        CheckpointError, match=r"do not fit the model \(missing: .*unexpected|shape"
    ):
        load_weights(create_model("resnet20"), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="weight files end in"):
        save_weights(_tiny(), tmp_path / "w.bin")
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(_tiny(), tmp_path / "bad.safetensors")


def test_a_checkpoint_also_loads_as_weights(tmp_path):
    model = _tiny()
    write_checkpoint(tmp_path, _checkpoint(model), last=True, best=False, keep_last=0)
    other = load_weights(_tiny(in_channels=1).apply(_reset_bn), tmp_path / "last.pt")
    pairs = zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def _reset_bn(m):
    if isinstance(m, torch.nn.BatchNorm2d):
        m.reset_parameters()


def test_torchvision_state_dict_loads_and_computes_what_torchvision_does(tmp_path):
    reference = json.loads((FIXTURES / "torchvision_resnets.json").read_text())["models"]
    layout = reference["resnet18"]["state_dict"]
    # As saved by a DataParallel-wrapped torchvision model: every key starts with "module.".
    torch.save({f"module.{k}": weight_for(k, tuple(s)) for k, s in layout}, tmp_path / "tv.pth")
    model = load_torchvision_weights(create_model("resnet18"), tmp_path / "tv.pth").eval()
    with torch.no_grad():
        logits = model(fixed_input())
    torch.testing.assert_close(
        logits, torch.tensor(reference["resnet18"]["logits"]), rtol=1e-4, atol=1e-4
    )


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path):
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2] == again[2]


def test_build_model_names_what_does_not_fit():
    with pytest.raises(ConfigError, match="'resnet50_signs' takes 3-channel images only"):
        build_model("resnet50_signs", 6, 1, {})
    with pytest.raises(ConfigError, match="'resnet50_signs' takes 64x64 images only"):
        check_input_size("resnet50_signs", (32, 32))
    check_input_size("resnet20", (16, 16))
    assert build_model("resnet20", 10, 1, {}).conv1.in_channels == 1


def test_unwrap_finds_the_model_inside_wrappers():
    model = _tiny()
    wrapper = torch.nn.Module()
    wrapper.module = model
    assert unwrap(wrapper) is model
    assert unwrap(model) is model


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    model = _tiny()
    write_checkpoint(tmp_path, _checkpoint(model, iteration=1), last=True, best=False, keep_last=0)
    before = (tmp_path / "last.pt").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(
            tmp_path, _checkpoint(model, iteration=2), last=True, best=False, keep_last=0
        )
    assert (tmp_path / "last.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
