"""Lesions and the path view: deletions, swaps, exact undo, binomial paths, routed gradients."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from analysis_support import batches, toy_data, trained
from resnetlab.analysis.lesion import (
    DeletedBlock,
    LesionStudy,
    error_rate,
    lesion_study,
    lesioned,
    random_deletions,
    random_swaps,
    single_deletions,
    swapped,
)
from resnetlab.analysis.netinfo import residual_blocks
from resnetlab.analysis.paths import (
    PathGradients,
    RoutedBlock,
    path_gradients,
    path_input_gradient,
    path_length_counts,
    path_length_distribution,
)
from resnetlab.analysis.plots_lesion import (
    plot_path_view,
    plot_random_lesions,
    plot_single_deletions,
)
from resnetlab.errors import ConfigError
from resnetlab.models import create_model
from resnetlab.models.resnet import cifar_resnet
from resnetlab.nn.shortcuts import ZeroPadShortcut

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _snapshot(model):
    modules = [(n, id(m)) for n, m in model.named_modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return modules, state


def _assert_same(model, snapshot):
    modules, state = snapshot
    assert [(n, id(m)) for n, m in model.named_modules()] == modules
    now = model.state_dict()
    assert list(now) == list(state)
    assert all(torch.equal(now[k], v) for k, v in state.items())


@pytest.mark.parametrize(
    ("overrides", "last"),
    [
        ({}, "bn2"),
        ({"norm": "none"}, "conv2"),
        ({"preact": True}, "conv2"),
        ({"shortcut": "B"}, "bn2"),
    ],
)
def test_deleting_a_zero_branch_block_changes_no_output_bit(overrides, last):
    model = trained(14, **overrides)
    x, _ = toy_data(16, seed=5)
    for name in ("layer1.1", "layer2.0", "layer3.1"):  # same-shape and downsampling blocks
        block = model.get_submodule(name)
        with torch.no_grad():
            getattr(block, last).weight.zero_()  # the branch now outputs exactly zero
            if last.startswith("bn"):
                getattr(block, last).bias.zero_()
            intact = model(x)
            with lesioned(model, [name]):
                assert isinstance(model.get_submodule(name), DeletedBlock)
                deleted = model(x)
        assert torch.equal(intact, deleted), name


def test_a_deleted_block_is_its_shortcut_alone():
    x = torch.rand(2, 16, 8, 8)  # non-negative, as a block's input after a ReLU
    res, plain = cifar_resnet(8), cifar_resnet(8, residual=False)
    pad = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 4, 4)], 1)
    assert torch.equal(DeletedBlock(res.layer2[0])(x), torch.relu(pad))
    assert torch.equal(DeletedBlock(plain.layer2[0])(x), pad)
    assert torch.equal(DeletedBlock(plain.layer1[0])(x), x)
    assert list(DeletedBlock(plain.layer2[0]).parameters()) == []
    proj = cifar_resnet(8, shortcut="B").eval()
    ds = proj.layer2[0].downsample
    with torch.no_grad():
        assert torch.equal(DeletedBlock(proj.layer2[0])(x), torch.relu(ds(x)))
    pre = cifar_resnet(8, preact=True, shortcut="B").eval()
    block = pre.layer2[0]
    with torch.no_grad():
        expected = block.downsample(torch.relu(block.bn1(x)))
        assert torch.equal(DeletedBlock(block)(x), expected)
    assert isinstance(DeletedBlock(plain.layer3[0]).shortcut, ZeroPadShortcut)


def test_lesions_and_swaps_are_undone_exactly_even_after_an_error():
    model = trained(20)
    x, _ = toy_data(8, seed=3)
    snapshot = _snapshot(model)
    with torch.no_grad():
        before = model(x)
        with lesioned(model, ["layer1.1", "layer3.0"]):
            assert not torch.equal(model(x), before)
        second, third = model.layer1[1], model.layer1[2]
        with swapped(model, [("layer1.1", "layer1.2"), ("layer3.1", "layer3.2")]):
            assert model.layer1[1] is third and model.layer1[2] is second
            assert not torch.equal(model(x), before)
        with pytest.raises(RuntimeError, match="inside"), lesioned(model, ["layer2.1"]):
            raise RuntimeError("inside")
        after = model(x)
    _assert_same(model, snapshot)
    assert torch.equal(before, after)


def test_swaps_refuse_blocks_of_other_shapes_and_unknown_names():
    model = cifar_resnet(20)
    bad = [
        ([("layer1.1", "layer2.1")], "do not have one and the same shape"),
        ([("layer1.1", "layer1.2"), ("layer1.2", "layer1.0")], "one swapped pair only"),
        ([("layer1.1", "layer9.0")], r"'layer9\.0' is not a block"),
    ]
    for pairs, message in bad:
        with pytest.raises(ConfigError, match=message), swapped(model, pairs):
            pass
    with pytest.raises(ConfigError, match=r"'layer9\.0' is not"), lesioned(model, ["layer9.0"]):
        pass


def test_error_rate_equals_an_independent_count():
    model, data = trained(8), batches(96)
    with torch.no_grad():
        wrong = sum(int((model(x).argmax(1) != y).sum()) for x, y in data)
    assert error_rate(model, data) == wrong / 96
    with pytest.raises(ConfigError, match="non-empty list"):
        error_rate(model, iter(data))


def test_random_deletions_and_swaps_draw_what_they_say_and_repeat_for_a_seed():
    model, data = trained(20), batches(64)
    deletions = random_deletions(model, data, draws=3, seed=7)
    assert list(deletions) == list(range(1, 8))  # 9 blocks, 2 downsampling ones left out
    assert [len(deletions[k]) for k in deletions] == [3] * 6 + [1]  # k = 7: one set exists
    assert deletions == random_deletions(model, data, draws=3, seed=7)
    everything = random_deletions(model, data, ks=[9], draws=2, include_shape_changing=True)
    assert len(everything[9]) == 1
    swaps = random_swaps(model, data, draws=2, seed=7)
    assert list(swaps) == [1, 2, 3]  # disjoint pairs: layer1 has 3 same-shape blocks, 2 and 3 two
    assert all(len(v) == 2 for v in swaps.values())
    with pytest.raises(ConfigError, match="between 1 and 7"):
        random_deletions(model, data, ks=[8])


def test_lesion_study_of_a_plain_twin_and_a_resnet(tmp_path):
    data = batches(64)
    studies = [
        lesion_study(
            trained(14, residual=r), data, draws=2, label=f"{'resnet' if r else 'plain'}14"
        )
        for r in (False, True)
    ]
    for s in studies:
        assert s.changes_shape == (False, False, True, False, True, False)
        assert s.single_error.shape == (6,) and s.images == 64
        again = single_deletions(trained(14, residual=s.residual), data)
        assert np.array_equal(again, s.single_error)
        json.dumps(s.to_dict(), allow_nan=False)
        back = LesionStudy.from_dict(json.loads(json.dumps(s.to_dict())))
        assert back.to_dict() == s.to_dict() and back.deletion_errors == s.deletion_errors
    single = plot_single_deletions(studies, tmp_path / "single")
    rand = plot_random_lesions(studies, tmp_path / "random")
    for files in (single, rand):
        assert files.png.read_bytes().startswith(PNG_MAGIC)
        assert "plain14 (solid, circles)" in files.alt
    assert "downsampling block" in single.svg.read_text()


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("cifar_resnet", {"depth": 8}),
        ("cifar_resnet", {"depth": 20}),
        ("resnet18", {}),
        ("resnet50", {"preact": True}),
    ],
)
def test_path_lengths_are_binomial_exactly(name, overrides):
    model = create_model(name, **overrides)
    n = len(residual_blocks(model))
    assert path_length_counts(model) == [math.comb(n, k) for k in range(n + 1)]
    distribution = path_length_distribution(model)
    assert distribution.tolist() == [math.comb(n, k) / 2**n for k in range(n + 1)]
    assert distribution.sum() == 1.0


def test_a_plain_net_has_one_path_through_every_block():
    plain = cifar_resnet(20, residual=False)
    assert path_length_counts(plain) == [0] * 9 + [1]
    images, labels = toy_data(4)
    with pytest.raises(ConfigError, match="a plain net has a single path"):
        path_gradients(plain, images, labels)


def test_routed_gradients_of_all_paths_add_up_to_the_full_gradient():
    model = trained(8, shortcut="B")  # 3 blocks, 8 paths; a projection in two of them
    images, labels = toy_data(16, seed=2)
    full = path_input_gradient(model, images, labels)
    routes = [
        path_input_gradient(model, images, labels, through=set(s))
        for k in range(4)
        for s in itertools.combinations(range(3), k)
    ]
    torch.testing.assert_close(sum(routes), full, rtol=1e-4, atol=1e-7)
    assert all(not torch.equal(r, full) for r in routes)


@pytest.mark.parametrize("overrides", [{}, {"shortcut": "B"}, {"preact": True, "shortcut": "B"}])
def test_routing_changes_the_backward_pass_only(overrides):
    model = trained(8, **overrides)
    x = torch.rand(4, 16, 8, 8)
    with torch.no_grad():
        for _, block in residual_blocks(model):
            expected = block(x)
            for through in (False, True):
                assert torch.equal(RoutedBlock(block, through)(x), expected)
            x = expected


def test_path_gradients_measure_every_length_and_repeat_for_a_seed(tmp_path):
    model = trained(14)
    images, labels = toy_data(16, seed=2)
    snapshot = _snapshot(model)
    paths = path_gradients(model, images, labels, samples=4, seed=3)
    _assert_same(model, snapshot)
    assert paths.samples.tolist() == [1, 4, 4, 4, 4, 4, 1]  # C(6, k) <= 4: each path once
    assert np.all(np.isfinite(paths.mean_norm)) and paths.full_norm > 0
    np.testing.assert_array_equal(paths.total(), paths.counts * paths.mean_norm)
    again = path_gradients(model, images, labels, samples=4, seed=3)
    assert np.array_equal(again.mean_norm, paths.mean_norm)
    short = path_gradients(model, images, labels, samples=2, lengths=[0, 6])
    assert np.isnan(short.mean_norm[1]) and short.to_dict()["mean_norm"][1] is None
    back = PathGradients.from_dict(json.loads(json.dumps(short.to_dict())))
    assert back.to_dict() == short.to_dict() and np.isnan(back.mean_norm[1])
    np.testing.assert_array_equal(back.total(), short.total())
    files = plot_path_view([paths], tmp_path / "paths")
    assert files.png.read_bytes().startswith(PNG_MAGIC) and "binomial" in files.alt
