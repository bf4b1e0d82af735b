"""The identity experiment: a deeper net built from a trained shallow one starts as its copy."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from torch import nn

from resnetlab import ConfigError, create_model
from resnetlab.analysis.records import read_json
from resnetlab.cli import main
from resnetlab.experiments.identity import deepen


def _perturb(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, as after training."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


@pytest.mark.parametrize(
    "overrides", [{}, {"shortcut": "B"}, {"preact": True}], ids=["A", "B", "preact"]
)
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train"])
def test_deepened_net_computes_exactly_the_shallow_function(overrides, train_mode):
    shallow = _perturb(create_model("cifar_resnet", depth=8, in_channels=1, **overrides), 1)
    deep = create_model(
        "cifar_resnet", depth=20, in_channels=1, zero_init_residual=True, **overrides
    )
    deepen(shallow, deep)
    shallow.train(train_mode)
    deep.train(train_mode)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(shallow(x), deep(x))  # bit for bit, not approximately
    # the added blocks are really there and really zero at their last BN (last conv if preact)
    extra = deep.layer2[2]
    last = extra.conv2.weight if overrides.get("preact") else extra.bn2.weight
    assert torch.count_nonzero(last) == 0
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in shallow.parameters())


def test_without_zero_init_the_deeper_net_is_a_different_function():
    shallow = _perturb(create_model("cifar_resnet", depth=8, in_channels=1), 1)
    deep = deepen(shallow, create_model("cifar_resnet", depth=14, in_channels=1)).eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert not torch.equal(shallow.eval()(x), deep(x))


def test_nets_that_do_not_nest_are_refused():
    with pytest.raises(ConfigError, match=r"the deep net has no layer1\.1\.conv1\.weight"):
        deepen(create_model("cifar_resnet", depth=14), create_model("cifar_resnet", depth=8))
    with pytest.raises(ConfigError, match="of shape"):
        deepen(
            create_model("cifar_resnet", depth=8),
            create_model("cifar_resnet", depth=14, in_channels=1),
        )


def test_identity_experiment_at_toy_scale(tmp_path):
    argv = [
        "experiment",
        "identity",
        "--shallow",
        "8",
        "--deep",
        "14",
        "--iterations",
        "4",
        "--batch-size",
        "32",
        "--set",
        "log_every=2",
        "--out",
        str(tmp_path),
    ]
    buffer = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(buffer):
            assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    text = buffer.getvalue()
    assert "identical at the start of phase 2: yes" in text
    results = read_json(tmp_path / "results.json")
    labels = [m["model"] for m in results["models"]]
    assert labels == ["resnet8", "resnet8-continued", "resnet14-from-8"]
    for model in results["models"]:
        summary = read_json(tmp_path / model["folders"][0] / "summary.json")
        assert model["train_error"] == [summary["final"]["train_error"]]
    deep = results["models"][2]["train_error"][0]
    shallow = results["models"][0]["train_error"][0]
    assert results["holds"] == (deep <= shallow)
    assert f"deep net never ends worse: {'yes' if deep <= shallow else 'no'}" in text
    assert results["identical_at_start"] is True
    assert (tmp_path / "init" / "resnet14-from-resnet8-seed0.safetensors").is_file()
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "report.html").is_file()
    config = read_json(tmp_path / "resnet14-from-8-seed0" / "summary.json")["config"]
    assert config["model"]["weights"].endswith("resnet14-from-resnet8-seed0.safetensors")


def test_identity_depths_are_checked(tmp_path, capsys):
    assert (
        main(["experiment", "identity", "--shallow", "14", "--deep", "8", "--out", str(tmp_path)])
        == 2
    )
    assert "--deep (8) must be larger than --shallow (14)" in capsys.readouterr().err
