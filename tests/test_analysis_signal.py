"""Signal propagation at initialisation: fits, the He et al. 2015b prediction, BN, the figures."""

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.analysis.netinfo import seeded
from resnetlab.analysis.plots_signal import plot_signal_profiles, plot_signal_slopes
from resnetlab.analysis.signal import (
    LogLinearFit,
    SignalProfile,
    fit_log_linear,
    he_prediction,
    signal_profile,
    signal_study,
    theory_applies,
)
from resnetlab.errors import ConfigError
from resnetlab.models.resnet import ResNet, cifar_resnet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RELU_OF_NORMAL_STD = math.sqrt(0.5 - 1 / (2 * math.pi))  # std of max(0, z), z ~ N(0, 1)


def _batch(n=16, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_log_linear_fit_recovers_an_exponential_and_skips_zeros():
    values = 3.0 * 0.8 ** np.arange(10.0)
    fit = fit_log_linear(values)
    assert fit.slope == pytest.approx(math.log(0.8), abs=1e-12)
    assert fit.factor == pytest.approx(0.8) and fit.r2 == pytest.approx(1.0)
    assert fit.intercept == pytest.approx(math.log(3.0))
    values[4] = 0.0  # a gradient that underflowed: left out, the line stays the same
    assert fit_log_linear(values).points == 9
    assert fit_log_linear(values).slope == pytest.approx(math.log(0.8), abs=1e-12)
    noisy = fit_log_linear([1.0, 10.0, 1.0, 10.0])
    assert 0.0 <= noisy.r2 < 0.5
    undefined = fit_log_linear([0.0, 1.0])
    assert math.isnan(undefined.slope) and undefined.points == 1
    assert undefined.to_dict()["slope"] is None


def test_plain_net_without_bn_follows_the_he_init_prediction():
    # He et al. 2015b (arXiv:1502.01852): Var(w) = 2/fan_out keeps the backward signal and scales
    # the forward second moment by C_in/C_out per conv (3/16 at the RGB stem, 1/2 where the
    # channels double). The prediction is an expectation over the weights: one net of width 64
    # scatters around it (std of measured/predicted over 32 seeds: 0.04 after the stem, 0.29 at
    # the deepest point), so we average the ratio over 32 seeds. Its standard error is then at
    # most 0.05 and the tolerance, 0.2, is four of them (the means measured: 0.98 to 1.02).
    images, labels = _batch()
    ratios, predicted = [], None
    for seed in range(32):
        with seeded(seed):
            model = ResNet(
                "basic", (1, 1, 1), widths=(64, 128, 256), stem="cifar", norm="none", residual=False
            )
        profile = signal_profile(model, images, labels)
        predicted = profile.predicted_rms
        ratios.append((profile.activation_rms / predicted) ** 2)
    mean_ratio = np.mean(ratios, axis=0)
    assert np.all(np.abs(mean_ratio - 1.0) < 0.2), mean_ratio
    # The prediction itself: the stem keeps 3/64 of the input's second moment in the interior,
    # a stage transition halves it; borders (zero padding) take a little more.
    moments = predicted**2
    input_moment = images.pow(2).mean().item()
    assert 0.8 * 3 / 64 * input_moment < moments[0] < 3 / 64 * input_moment
    assert 0.3 < moments[2] / moments[1] < 0.5 and 0.3 < moments[3] / moments[2] < 0.5


def test_with_bn_every_bn_output_has_unit_std_and_plain_blocks_do_not_drift():
    images, labels = _batch(32)
    model = cifar_resnet(20, residual=False)
    bn_stds = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda m, i, o: bn_stds.append(o.detach().std().item()))
    profile = signal_profile(model, images, labels)
    # Train mode: each channel is normalised by its own batch statistics (gamma 1, beta 0), so
    # the std over all elements is 1 up to eps = 1e-5 and the unbiased/biased factor.
    assert len(bn_stds) == 19 and np.allclose(bn_stds, 1.0, atol=1e-3)
    # A plain block ends in ReLU(BN(.)): the std of ReLU of a unit normal, at every depth.
    assert np.allclose(profile.activation_std, RELU_OF_NORMAL_STD, rtol=0.03)
    assert abs(profile.activation_fit.slope) < 0.01


def test_profile_gradients_equal_an_ordinary_backward_and_leave_the_model_as_it_was():
    images, labels = _batch()
    model = cifar_resnet(8)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    profile = signal_profile(model, images, labels)
    reference = copy.deepcopy(model).train()
    F.cross_entropy(reference(images), labels).backward()
    expected = [reference.get_parameter(n).grad.double().norm().item() for n in profile.grad_layers]
    np.testing.assert_allclose(profile.grad_norm, expected, rtol=1e-6)
    assert not model.training and all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():  # running stats and counters included
        assert torch.equal(value, before[key]), key
    assert profile.points == ("stem", "layer1.0", "layer2.0", "layer3.0")
    assert len(profile.grad_layers) == 8 and profile.grad_layers[-1] == "fc.weight"
    assert profile.main_path == tuple(range(7))  # option A: no projection convs
    assert profile.label == "resnet8" and profile.depth == 8


def test_projection_convs_are_recorded_but_not_fitted():
    profile = signal_profile(cifar_resnet(8, shortcut="B"), *_batch())
    names = [profile.grad_layers[i] for i in profile.main_path]
    assert "layer2.0.downsample.0.weight" in profile.grad_layers
    assert not any("downsample" in n or n.startswith("fc") for n in names)
    assert profile.grad_fit.points == len(names) == 7


def test_study_builds_twins_from_one_seed_and_is_json_ready():
    images, labels = _batch(8, 8)
    profiles = signal_study(images, labels, depths=(8, 14), seed=3)
    assert [p.label for p in profiles] == [
        "plain8", "resnet8", "plain14", "resnet14",
        "plain8-nobn", "resnet8-nobn", "plain14-nobn", "resnet14-nobn",
    ]  # fmt: skip
    # Twins share their weights, so their stems (before any shortcut) answer the same.
    assert profiles[0].activation_std[0] == profiles[1].activation_std[0]
    assert [p.predicted_rms is not None for p in profiles] == [False] * 4 + [True, False] * 2
    again = signal_study(images, labels, depths=(8,), norms=("none",), seed=3)
    assert np.array_equal(again[0].grad_norm, profiles[4].grad_norm)
    text = json.dumps([p.to_dict() for p in profiles], allow_nan=False)
    assert json.loads(text)[0]["activation_fit"]["points"] == 4


def test_prediction_refuses_nets_it_does_not_describe():
    assert theory_applies(cifar_resnet(8, residual=False, norm="none"))
    for model in (cifar_resnet(8, norm="none"), cifar_resnet(8, residual=False)):
        assert not theory_applies(model)
        with pytest.raises(ConfigError, match="plain net without BN"):
            he_prediction(model, torch.randn(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="labels"):
        signal_profile(cifar_resnet(8), torch.randn(2, 3, 8, 8), torch.zeros(3, dtype=torch.long))


def test_figures_are_written_with_alt_text(tmp_path):
    profiles = signal_study(*_batch(4, 8), depths=(8, 14))
    for files in (
        plot_signal_profiles(profiles, tmp_path / "profiles"),
        plot_signal_slopes(profiles, tmp_path / "slopes"),
    ):
        assert files.png.read_bytes().startswith(PNG_MAGIC)
        assert files.svg.stat().st_size > 5000
        assert "plain" in files.alt and "ResNets (dashed, squares)" in files.alt
    text = (tmp_path / "profiles.svg").read_text()
    assert "without BN" in text and "#fdae6b" in text and "#9ecae1" in text  # depth-8 colours


def test_profiles_read_back_from_their_json_are_the_same():
    images, labels = _batch(8, 8)
    for profile in signal_study(images, labels, depths=(8,), norms=("bn", "none")):
        record = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
        back = SignalProfile.from_dict(record)
        assert back.to_dict() == profile.to_dict()
        assert np.array_equal(back.grad_norm, profile.grad_norm)
        assert back.main_path == profile.main_path and back.points == profile.points
        assert (back.predicted_rms is None) == (profile.predicted_rms is None)
    undefined = LogLinearFit.from_dict(fit_log_linear([0.0, 1.0]).to_dict())
    assert math.isnan(undefined.slope) and undefined.points == 1
