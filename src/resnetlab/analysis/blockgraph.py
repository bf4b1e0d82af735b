"""The data flow of one block, read from its own modules: what a block diagram shows.

A residual block computes ``y = relu(F(x) + shortcut(x))`` (He et al. 2015, arXiv:1512.03385,
§3.1-3.3); which modules make ``F`` and the shortcut, and in which order they run, is written
only in the block's ``forward``. ``block_graph`` therefore traces the forward pass of a real
block with ``torch.fx`` (every ``torch.nn`` module and option A's ``ZeroPadShortcut`` kept whole)
and runs one example input through the traced graph to record every tensor's shape. A change to
a block's code (another order, a missing BN, a new shortcut) changes the graph, and with it the
diagram drawn from it (``plots_blocks``).

The graph's *main path* is the longest chain of operations from the input to the output: the
residual branch ``F`` and what follows the addition. Every other operation lies on the shortcut.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from resnetlab.errors import ConfigError
from resnetlab.nn.shortcuts import ZeroPadShortcut

ADD_FUNCTIONS = (operator.add, torch.add)


@dataclass(frozen=True)
class Node:
    """One operation of a block.

    Attributes:
        name: the module's name inside the block (``conv1``, ``downsample.0``), ``x`` for the
            input, ``add`` for the addition, ``y`` for the output.
        kind: ``"input"``, ``"conv"``, ``"bn"``, ``"relu"``, ``"zeropad"``, ``"identity"``,
            ``"add"``, ``"output"`` or ``"other"``.
        text: what the diagram writes in the node (``3x3 conv, 16→32, stride 2``).
        shape: (C, H, W) of the node's output for the example input.
        inputs: the names of the nodes it reads, in argument order.
    """

    name: str
    kind: str
    text: str
    shape: tuple[int, ...]
    inputs: tuple[str, ...]

    @property
    def module(self) -> str:
        """The module's name without the use count (``relu`` for ``relu (2)``)."""
        return self.name.split(" (")[0]


@dataclass(frozen=True)
class BlockGraph:
    """A block's operations in the order they run, split into main path and shortcut.

    Attributes:
        title: what the block is (``ResNet-20 layer2.0, option B``).
        nodes: every operation, input first and output last.
        main: names of the nodes on the main path, input to output.
        shortcut: names of the other nodes (the shortcut's modules), in order.
        identity_shortcut: the input itself reaches the addition (no module on the shortcut).
    """

    title: str
    nodes: tuple[Node, ...]
    main: tuple[str, ...]
    shortcut: tuple[str, ...]
    identity_shortcut: bool

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        return next(n for n in self.nodes if n.name == name)

    @property
    def residual(self) -> bool:
        """Whether the block adds a shortcut to its branch."""
        return any(n.kind == "add" for n in self.nodes)

    def branch(self) -> tuple[str, ...]:
        """The nodes of ``F``: the main path between the input and the addition (all of the
        main path but the input and output for a plain block)."""
        inner = self.main[1:-1]
        adds = [i for i, name in enumerate(inner) if self.node(name).kind == "add"]
        return inner[: adds[0]] if adds else inner

    def describe(self) -> str:
        """The graph in words, for the figure's alt text."""
        x, y = self.node(self.main[0]), self.node(self.main[-1])
        branch = "; ".join(f"{n} ({self.node(n).text})" for n in self.branch())
        words = [f"{self.title}: the input x ({_shape(x.shape)}) goes through {branch}"]
        if self.residual:
            if self.identity_shortcut:
                words.append("The shortcut carries x unchanged to the addition")
            else:
                first = self.node(self.shortcut[0])
                source = "x" if first.inputs[0] == "x" else f"the output of {first.inputs[0]}"
                modules = "; ".join(f"{n} ({self.node(n).text})" for n in self.shortcut)
                words.append(f"The shortcut takes {source} through {modules}")
            after = [self.node(n).text for n in self.main if self._after_add(n)]
            words.append(
                "The two are added"
                + (f" and pass {', '.join(after)}" if after else "")
                + f", giving y ({_shape(y.shape)})"
            )
        else:
            words.append(f"There is no shortcut; y ({_shape(y.shape)}) is the last output")
        return ". ".join(words) + "."

    def _after_add(self, name: str) -> bool:
        add = next((i for i, n in enumerate(self.main) if self.node(n).kind == "add"), None)
        i = self.main.index(name)
        return add is not None and add < i < len(self.main) - 1


class _Tracer(torch.fx.Tracer):
    """Keeps ``torch.nn`` modules and option A's shortcut as single operations."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ZeroPadShortcut) or super().is_leaf_module(m, qualname)


def block_graph(block: nn.Module, example: torch.Tensor, title: str = "") -> BlockGraph:
    """Trace ``block`` on ``example`` and return its operations with their shapes.

    Args:
        block: one block of a network (a basic or bottleneck block, the SIGNS net's blocks, any
            module whose forward ``torch.fx`` can trace); it is not changed.
        example: (B, C, H, W) an input of the shape the block receives in its network.
        title: the block's name in the diagram.

    Raises:
        ConfigError: the forward pass cannot be traced (data-dependent control flow).
    """
    try:
        graph = _Tracer().trace(block)
    except Exception as err:  # fx raises TraceError, TypeError, ... for untraceable code
        raise ConfigError(f"cannot trace the block's forward pass: {err}") from None
    module = torch.fx.GraphModule(block, graph)
    with torch.no_grad():
        was_training = block.training
        module.eval()
        ShapeProp(module).propagate(example)
        block.train(was_training)
    nodes = _nodes(graph, dict(block.named_modules()))
    main = _longest_path(nodes)
    shortcut = tuple(n.name for n in nodes if n.name not in main)
    adds = [n for n in nodes if n.kind == "add"]
    identity = any(main[0] in a.inputs for a in adds)
    return BlockGraph(title, tuple(nodes), main, shortcut, identity)


def _nodes(graph: torch.fx.Graph, modules: dict[str, nn.Module]) -> list[Node]:
    """The graph's nodes as ``Node``s: modules named by their place in the block; a module used
    twice (one ReLU object, two uses) is ``relu`` the first time and ``relu (2)`` the second."""
    names: dict[str, str] = {}  # fx node name -> our name
    uses: dict[str, int] = {}
    nodes = []
    for fx_node in graph.nodes:
        if fx_node.op == "output":
            source = fx_node.args[0]
            nodes.append(Node("y", "output", "output", _node_shape(source), (names[source.name],)))
            continue
        if fx_node.op == "placeholder":
            name, kind, text = "x", "input", "input"
        elif fx_node.op == "call_module":
            name = str(fx_node.target)
            kind, text = describe_module(modules[name])
        elif fx_node.op == "call_function" and fx_node.target in ADD_FUNCTIONS:
            name, kind, text = "add", "add", "+"
        else:
            name, kind, text = fx_node.name, "other", str(fx_node.target)
        uses[name] = uses.get(name, 0) + 1
        unique = name if uses[name] == 1 else f"{name} ({uses[name]})"
        inputs = tuple(names[a.name] for a in fx_node.all_input_nodes)
        names[fx_node.name] = unique
        nodes.append(Node(unique, kind, text, _node_shape(fx_node), inputs))
    return nodes


def describe_module(m: nn.Module) -> tuple[str, str]:
    """``(kind, text)`` of a module as a block diagram shows it."""
    if isinstance(m, nn.Conv2d):
        k = "x".join(map(str, m.kernel_size))
        stride = f", stride {m.stride[0]}" if m.stride[0] != 1 else ""
        bias = ", bias" if m.bias is not None else ""
        return "conv", f"{k} conv, {m.in_channels}→{m.out_channels}{stride}{bias}"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "bn", "BatchNorm"
    if isinstance(m, nn.ReLU):
        return "relu", "ReLU"
    if isinstance(m, ZeroPadShortcut):
        stride = f", stride {m.stride}" if m.stride > 1 else ""
        return "zeropad", f"zero-pad {m.in_channels}→{m.out_channels}{stride}"
    if isinstance(m, nn.Identity):
        return "identity", "no BN (identity)"
    return "other", type(m).__name__


def _node_shape(fx_node: torch.fx.Node) -> tuple[int, ...]:
    meta = fx_node.meta.get("tensor_meta")
    return tuple(meta.shape[1:]) if meta is not None else ()


def _longest_path(nodes: Sequence[Node]) -> tuple[str, ...]:
    """The longest chain from the input to the output (nodes are in execution order, so one
    pass in that order is a topological pass)."""
    best: dict[str, tuple[str, ...]] = {}
    for n in nodes:
        if not n.inputs:
            best[n.name] = (n.name,)
            continue
        longest = max((best[i] for i in n.inputs), key=len)
        best[n.name] = (*longest, n.name)
    return best[nodes[-1].name]


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))
