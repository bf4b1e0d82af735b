"""Loss landscapes: the centre, filter-normalised directions, resume after a kill, the figures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from analysis_support import batches, trained
from resnetlab.analysis import landscape as landscape_module
from resnetlab.analysis.landscape import (
    evaluate,
    filter_normalized_direction,
    loss_landscape,
    moved,
    random_directions,
)
from resnetlab.analysis.landscape_grid import CHUNK, GridSpec
from resnetlab.analysis.plots_landscape import (
    plot_landscape_contours,
    plot_landscape_curves,
    plot_landscape_surfaces,
)
from resnetlab.errors import ConfigError, DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)
TESTS = Path(__file__).resolve().parent


def _own_loss(model, data):
    """The model's evaluated loss, computed here: eval mode, summed per batch, over the count."""
    model.eval()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in data)
    return total / sum(len(y) for _, y in data)


def test_the_centre_is_the_models_own_loss_bit_for_bit():
    # At a coordinate of exactly 0 the weights are written back from a copy of theta, not
    # computed as theta + 0 * d (which can turn -0.0 into 0.0), and the loss is summed over the
    # same batches in the same order in this same process: the same floats, so == holds.
    model, data = trained(8), batches(64)
    own = _own_loss(model, data)
    curve = loss_landscape(model, data, GRID)
    surface = loss_landscape(model, data, GRID, GRID)
    assert curve.loss[2] == own and curve.centre_loss == own
    assert surface.loss[2, 2] == own and surface.centre_loss == own
    assert np.array_equal(surface.loss[2], curve.loss)  # beta = 0: the 1-D curve, same direction
    assert curve.loss[0] > own and curve.loss[-1] > own  # a minimum: the edges lie higher
    assert surface.images == 64 and surface.loss.shape == (5, 5)


def test_every_filter_of_a_direction_has_its_weight_filters_norm():
    model = trained(8, shortcut="B")
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    checked = 0
    for (name, p), d in zip(model.named_parameters(), direction, strict=True):
        assert d.shape == p.shape
        if p.dim() == 1:  # BN scales and shifts, the fc bias: left at zero (Li et al.)
            assert torch.count_nonzero(d) == 0, name
            continue
        torch.testing.assert_close(
            d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5, atol=1e-7
        )
        assert not torch.allclose(d, p)  # a random direction, not the weights themselves
        checked += 1
    assert checked == 10  # 7 convs, 2 projections, the fc weight
    first, second = random_directions(model, seed=4)
    again = random_directions(model, seed=4, count=1)[0]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_zero_weight_filter_gets_a_zero_direction():
    model = trained(8, zero_init_residual=True, norm="none", steps=0)
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    conv2 = dict(zip([n for n, _ in model.named_parameters()], direction, strict=True))
    assert torch.count_nonzero(conv2["layer1.0.conv2.weight"]) == 0


def test_the_model_is_left_exactly_as_it_was():
    model, data = trained(8), batches(32)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss_landscape(model, data, GRID, GRID[:2])
    d = random_directions(model, count=1)
    with moved(model, d, [0.5]):
        assert not torch.equal(model.conv1.weight, state["conv1.weight"])
    assert model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


class _Killed(Exception):
    pass


def test_a_killed_computation_resumes_without_recomputing_finished_points(tmp_path, monkeypatch):
    model, data = trained(8), batches(32)
    grid = np.linspace(-1, 1, 7)  # 49 points: 4 chunk files
    straight = loss_landscape(model, data, grid, grid)
    calls = []
    point = landscape_module.Evaluator.point

    def dies_after_20(self, coords):
        if len(calls) == 20:
            raise _Killed  # the process dies here: 20 points finished and on disk
        calls.append(coords)
        return point(self, coords)

    monkeypatch.setattr(landscape_module.Evaluator, "point", dies_after_20)
    with pytest.raises(_Killed):
        loss_landscape(model, data, grid, grid, out_dir=tmp_path)
    on_disk = [json.loads(f.read_text()) for f in sorted((tmp_path / "chunks").glob("*.json"))]
    assert sum(len(c["points"]) for c in on_disk) == 20 and len(on_disk) == 2  # 16 + 4

    calls.clear()
    counting = lambda self, coords: calls.append(coords) or point(self, coords)  # noqa: E731
    monkeypatch.setattr(landscape_module.Evaluator, "point", counting)
    resumed = loss_landscape(model, data, grid, grid, out_dir=tmp_path)
    assert len(calls) == resumed.computed == 49 - 20
    assert calls == GridSpec.make(grid, grid, 0).points()[20:]  # the rest, in order
    assert np.array_equal(resumed.loss, straight.loss)
    assert np.array_equal(resumed.error, straight.error)
    calls.clear()
    again = loss_landscape(model, data, grid, grid, out_dir=tmp_path)
    assert calls == [] and again.computed == 0 and np.array_equal(again.loss, straight.loss)


def test_a_folder_of_another_landscape_is_refused(tmp_path):
    model, data = trained(8), batches(32)
    loss_landscape(model, data, GRID, out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"landscape\.json: holds a landscape of other seed"):
        loss_landscape(model, data, GRID, seed=1, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="other alphas"):
        loss_landscape(model, data, GRID[:3], out_dir=tmp_path)
    with pytest.raises(ConfigError, match="other fingerprint"):
        loss_landscape(model, batches(32, seed=9), GRID, out_dir=tmp_path)
    (tmp_path / "chunks" / "chunk-00000.json").write_text('{"points": {"99": [1, 0]}}')
    with pytest.raises(DataError, match=r"chunk-00000\.json: not a landscape chunk of this grid"):
        loss_landscape(model, data, GRID, out_dir=tmp_path)


def test_bad_grids_and_jobs_are_one_clear_error():
    model, data = trained(8), batches(32)
    with pytest.raises(ConfigError, match="alphas must be a non-empty list of finite numbers"):
        loss_landscape(model, data, [])
    with pytest.raises(ConfigError, match="betas must be"):
        loss_landscape(model, data, GRID, [0.0, float("nan")])
    with pytest.raises(ConfigError, match="jobs must be a positive integer"):
        loss_landscape(model, data, GRID, jobs=0)
    with pytest.raises(ConfigError, match="non-empty list"):
        evaluate(model, [])


@pytest.mark.slow
def test_jobs_split_the_grid_between_processes(tmp_path):
    model, data = trained(8), batches(32)
    grid = np.linspace(-1, 1, 6)  # 36 points, 3 chunks
    alone = loss_landscape(model, data, grid, grid)
    together = loss_landscape(model, data, grid, grid, jobs=2, out_dir=tmp_path)
    # Each process runs with half the threads; a different split of a reduction may change the
    # last bits of a float, so the comparison allows float32 rounding.
    np.testing.assert_allclose(together.loss, alone.loss, rtol=1e-5)
    assert together.computed == 36 and len(list((tmp_path / "chunks").glob("*.json"))) == 3


# The net is trained in the child as here, on as many threads (a conv's sums on another thread
# count round differently, so the weights, and the grid's fingerprint, would differ).
_KILLED_RUN = """
import numpy as np
import torch
torch.set_num_threads({threads})
from analysis_support import batches, trained
from resnetlab.analysis.landscape import loss_landscape
grid = np.linspace(-1, 1, 16)
loss_landscape(trained(8), batches(64), grid, grid, jobs=2, out_dir={out!r})
"""


@pytest.mark.slow
def test_a_sigkilled_pool_resumes_from_the_points_on_disk(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_RUN.format(out=str(tmp_path), threads=torch.get_num_threads()),
        ],
        env=env,
        start_new_session=True,  # its own process group: the kill reaches the workers too
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            files = list((tmp_path / "chunks").glob("chunk-*.json"))
            if sum(len(json.loads(f.read_text())["points"]) for f in files) >= CHUNK:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finished = sum(
        len(json.loads(f.read_text())["points"]) for f in (tmp_path / "chunks").glob("chunk-*.json")
    )
    assert CHUNK <= finished < 256, "the run was killed before it ended"
    grid = np.linspace(-1, 1, 16)
    model, data = trained(8), batches(64)
    resumed = loss_landscape(model, data, grid, grid, out_dir=tmp_path)
    assert resumed.computed == 256 - finished
    straight = loss_landscape(model, data, grid, grid)
    np.testing.assert_allclose(resumed.loss, straight.loss, rtol=1e-5)


def test_figures_are_written_with_alt_text(tmp_path):
    data = batches(32)
    curves, surfaces = [], []
    for residual in (False, True):
        model, label = trained(8, residual=residual), f"{'resnet' if residual else 'plain'}8"
        curves.append(loss_landscape(model, data, GRID, label=label))
        surfaces.append(loss_landscape(model, data, GRID, GRID, label=label))
    for files in (
        plot_landscape_curves(curves, tmp_path / "curves"),
        plot_landscape_contours(surfaces, tmp_path / "contours"),
        plot_landscape_surfaces(surfaces, tmp_path / "surfaces"),
    ):
        assert files.png.read_bytes().startswith(PNG_MAGIC)
        assert "plain8, resnet8" in files.alt and "at the centre" in files.alt
    with pytest.raises(ConfigError, match="no 2-D landscapes"):
        plot_landscape_contours(curves, tmp_path / "nothing")
    json.dumps([s.to_dict() for s in surfaces], allow_nan=False)
