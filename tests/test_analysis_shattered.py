"""Shattered gradients: the line, the autocorrelation, what ReLU nets must show, the figures."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from resnetlab.analysis.plots_shattered import plot_lag1, plot_shattered
from resnetlab.analysis.shattered import (
    ShatteredGradients,
    gradient_autocorrelation,
    input_line,
    line_gradients,
    shattered_gradients,
    shattered_study,
)
from resnetlab.errors import ConfigError
from resnetlab.models.resnet import cifar_resnet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _ends(size=8, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, size, size, generator=g)
    return a, a + scale * torch.randn(3, size, size, generator=g)


def test_the_line_runs_from_start_to_end_evenly():
    a, b = _ends()
    line = input_line(a, b, 5)
    assert line.shape == (5, 3, 8, 8)
    assert torch.equal(line[0], a) and torch.allclose(line[-1], b, atol=1e-6)
    torch.testing.assert_close(line[2], (a + b) / 2)
    with pytest.raises(ConfigError, match="two \\(C, H, W\\) inputs of one shape"):
        input_line(a, b[:, :4], 5)
    with pytest.raises(ConfigError, match="points must be an integer >= 2"):
        input_line(a, b, 1)


@pytest.mark.parametrize("output", [None, 3])
def test_a_linear_models_gradient_has_autocorrelation_one_at_every_lag(output):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 64, 10))
    a, b = _ends()
    record = shattered_gradients(model, a, b, points=32, max_lag=31, output=output)
    np.testing.assert_allclose(record.autocorrelation, 1.0, atol=1e-6)
    assert record.lag1 == pytest.approx(1.0, abs=1e-6)
    # The restriction to the line is affine: its derivative is f(b) - f(a) everywhere.
    with torch.no_grad():
        ends = model(torch.stack([a, b]))
        ends = ends.sum(1) if output is None else ends[:, output]
    np.testing.assert_allclose(record.along_line, float(ends[1] - ends[0]), rtol=1e-4)
    assert record.label == "Sequential" and record.depth is None
    assert record.output == ("sum of logits" if output is None else "logit 3")


def test_white_noise_has_no_autocorrelation_and_a_random_walk_keeps_it():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(256, 2000, generator=g)
    white = gradient_autocorrelation(noise, 8)
    assert white[0] == pytest.approx(1.0) and np.all(np.abs(white[1:]) < 0.01)
    walk = gradient_autocorrelation(noise.cumsum(0), 8)  # brown noise: neighbours nearly equal
    assert np.all(walk[1:] > 0.5) and np.all(np.diff(walk) < 0)
    with pytest.raises(ConfigError, match="max_lag must be between 1 and 255"):
        gradient_autocorrelation(noise, 256)


@pytest.mark.parametrize("norm", ["none", "bn"])
def test_relu_net_gradients_are_piecewise_constant_along_the_line(norm):
    # Eval mode makes a ReLU net piecewise linear in its input (convs, BN with fixed statistics,
    # option A shortcuts, average pooling and the fc are linear): between two points with the
    # same pattern of active ReLUs the gradient is the same, bit for bit, since backward only
    # reads that pattern; and it changes only where the pattern does.
    model = cifar_resnet(8, norm=norm).eval()
    a, b = _ends(scale=0.05)
    line = input_line(a, b, 120)
    grads = line_gradients(model, line, batch_size=64)
    patterns = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: patterns.append((o > 0).flatten(1).clone()))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        model(line)
    for hook in hooks:
        hook.remove()
    active = torch.cat(patterns, 1)  # (N, every ReLU unit)
    same_pattern = (active[1:] == active[:-1]).all(1)
    same_grad = (grads[1:] == grads[:-1]).all(1)
    assert 0 < same_pattern.sum() < len(same_pattern)  # both cases occur on this line
    assert torch.equal(same_pattern, same_grad)
    assert torch.equal(grads, line_gradients(model, line, batch_size=50))  # batching is neutral


def test_study_is_deterministic_for_a_seed_and_leaves_nets_alone():
    a, b = _ends()
    first = shattered_study(a, b, depths=(8,), points=16, seed=1)
    again = shattered_study(a, b, depths=(8,), points=16, seed=1)
    other = shattered_study(a, b, depths=(8,), points=16, seed=2)
    assert [r.label for r in first] == ["plain8", "resnet8"]
    for x, y in zip(first, again, strict=True):
        assert np.array_equal(x.autocorrelation, y.autocorrelation)
        assert np.array_equal(x.along_line, y.along_line)
    assert not np.array_equal(first[0].along_line, other[0].along_line)
    assert len(first[0].autocorrelation) == 5  # lags 0..points/4
    json.dumps([r.to_dict() for r in first], allow_nan=False)
    for r in first:  # read back from its JSON, the same record
        back = ShatteredGradients.from_dict(json.loads(json.dumps(r.to_dict())))
        assert back.to_dict() == r.to_dict() and back.lag1 == r.lag1
        assert np.array_equal(back.along_line, r.along_line)


def test_calibration_sets_bn_statistics_only_for_the_measurement():
    model = cifar_resnet(8)
    before = copy.deepcopy(model.state_dict())
    a, b = _ends()
    calibration = 3.0 + torch.randn(16, 3, 8, 8)
    raw = shattered_gradients(model, a, b, points=16)
    calibrated = shattered_gradients(model, a, b, points=16, calibration=calibration)
    assert not np.array_equal(raw.along_line, calibrated.along_line)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_a_bad_output_index_is_one_clear_error():
    a, b = _ends()
    with pytest.raises(ConfigError, match="output must be a class index below 10"):
        shattered_gradients(cifar_resnet(8), a, b, points=4, output=10)


def test_figures_are_written_with_alt_text(tmp_path):
    a, b = _ends()
    records = shattered_study(a, b, depths=(8, 14), points=16)
    for files in (
        plot_shattered(records, tmp_path / "shattered"),
        plot_lag1(records, tmp_path / "lag1"),
    ):
        assert files.png.read_bytes().startswith(PNG_MAGIC)
        assert "plain" in files.alt and "ResNet" in files.alt
    assert "lag" in (tmp_path / "shattered.svg").read_text()
