"""Block diagrams follow the block's code: traced data flow, shapes, and a picture of it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.analysis.blockgraph import block_graph
from resnetlab.analysis.plots_blocks import plot_blocks
from resnetlab.errors import ConfigError
from resnetlab.models import create_model
from resnetlab.models.resnet import cifar_plain, cifar_resnet
from resnetlab.nn.blocks import BasicBlock

X = torch.zeros(2, 16, 8, 8)  # what layer1.0 and layer2.0 of a CIFAR net on 8x8 images receive
BRANCH = ("conv1", "bn1", "relu", "conv2", "bn2")


def test_the_identity_block_adds_its_input_after_the_branch():
    g = block_graph(cifar_resnet(20).layer1[0], X, "identity")
    assert g.main == ("x", *BRANCH, "add", "relu (2)", "y")
    assert g.branch() == BRANCH and g.shortcut == () and g.identity_shortcut and g.residual
    assert g.node("add").inputs == ("bn2", "x")  # F(x) + x
    assert g.node("relu (2)").module == "relu"  # the one ReLU module, used twice
    assert g.node("y").shape == (16, 8, 8)


def test_the_shortcut_options_are_read_from_the_modules():
    a = block_graph(cifar_resnet(20).layer2[0], X)
    assert a.shortcut == ("downsample",) and a.node("downsample").kind == "zeropad"
    assert a.node("downsample").text == "zero-pad 16→32, stride 2"
    b = block_graph(cifar_resnet(20, shortcut="B").layer2[0], X)
    assert b.shortcut == ("downsample.0", "downsample.1")
    assert b.node("downsample.0").text == "1x1 conv, 16→32, stride 2"
    assert b.node("conv1").text == "3x3 conv, 16→32, stride 2"
    assert b.node("y").shape == (32, 4, 4) and not b.identity_shortcut
    c = block_graph(cifar_resnet(20, shortcut="C").layer1[0], X)
    assert c.node("downsample.0").text == "1x1 conv, 16→16"  # a projection where none is needed
    assert block_graph(cifar_resnet(20, shortcut="B").layer1[0], X).identity_shortcut


def test_a_plain_block_has_no_shortcut_and_no_addition():
    g = block_graph(cifar_plain(20).layer1[0], X)
    assert g.main == ("x", *BRANCH, "relu (2)", "y") and not g.residual
    assert "There is no shortcut" in g.describe()


def test_other_code_gives_another_graph():
    pre = block_graph(cifar_resnet(20, preact=True).layer1[0], X)
    assert pre.main == ("x", "bn1", "relu", "conv1", "bn2", "relu (2)", "conv2", "add", "y")
    no_bn = block_graph(cifar_resnet(20, norm="none").layer1[0], X)
    assert no_bn.node("bn1").kind == "identity"

    class AddFirst(BasicBlock):  # a block whose code adds before its second conv
        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.bn1(self.conv1(x))) + x))

    g = block_graph(AddFirst(16, 16), X)
    assert g.main == ("x", "conv1", "bn1", "relu", "add", "conv2", "relu (2)", "y")
    assert "bn2" not in [n.name for n in g.nodes]  # built but never called: not drawn


def test_the_course_blocks_trace_too():
    signs = create_model("resnet50_signs")
    block = signs.stage3.a  # the convolutional block: a projection shortcut
    g = block_graph(block, torch.zeros(1, 256, 15, 15))
    assert "3x3 conv, 128→128, bias" in g.node("branch2b").text
    assert [g.node(n).kind for n in g.shortcut] == ["conv", "bn"]


def test_a_block_that_cannot_be_traced_is_named():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # data-dependent: no single graph

    with pytest.raises(ConfigError, match="cannot trace the block's forward pass"):
        block_graph(Branchy(), X)


def test_the_diagram_and_its_alt_text_show_the_graph(tmp_path):
    graphs = [
        block_graph(cifar_resnet(20).layer1[0], X, "identity block"),
        block_graph(cifar_resnet(20, shortcut="B").layer2[0], X, "projection block"),
    ]
    files = plot_blocks(graphs, tmp_path / "blocks")
    svg = files.svg.read_text()
    for text in ("conv1", "downsample.0", "1x1 conv, 16→32, stride 2", "F(x) + x", "identity: x"):
        assert text in svg
    assert files.png.stat().st_size > 5000
    assert "identity block: the input x (16x8x8) goes through conv1 (3x3 conv, 16→16)" in files.alt
    assert "The shortcut takes x through downsample.0 (1x1 conv, 16→32, stride 2)" in files.alt
    assert "giving y (32x4x4)" in files.alt
