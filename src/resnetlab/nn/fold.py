"""Fold BatchNorm into the convolution before it, for inference.

In eval mode a BN is a fixed affine map per channel, ``y = (x - mean) * s + beta`` with
``s = gamma / sqrt(var + eps)``. When its input is a convolution's output that nothing else
reads, the map merges into the convolution: ``w' = w * s`` (per output channel) and
``b' = (b - mean) * s + beta``. The folded network computes the same function with one pass
less over every activation.

Which conv feeds which BN is read from the autograd graph of one forward pass, not from module
names, so one function folds the stem, both block shapes, projection shortcuts, pre-activation
blocks (there ``conv1`` feeds ``bn2``, and ``bn1`` acts on the block input and stays) and the
SIGNS net alike.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn

# Folding reorders fp32 arithmetic; anything beyond this (relative to the largest output) is a
# wrong fold, not rounding.
FOLD_TOLERANCE = 1e-4


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """The (conv, bn) module names whose BN reads only, and is the only reader of, the conv output.

    Args:
        model: the network; it is run once on ``example`` in eval mode (so BN statistics stay).
        example: an input batch of the shape the network will see.

    Returns:
        Pairs in the order the convs ran. A conv or BN that runs twice (shared weights), a BN
        without running statistics, and a conv whose output also feeds something else are left out.
    """
    names = {m: n for n, m in model.named_modules()}
    conv_node: dict[str, object] = {}
    bn_input: dict[str, object] = {}
    calls: Counter[str] = Counter()

    def after_conv(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        calls[names[module]] += 1
        conv_node[names[module]] = output.grad_fn

    def before_bn(module: nn.Module, inputs: tuple) -> None:
        calls[names[module]] += 1
        bn_input[names[module]] = inputs[0].grad_fn

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
            handles.append(module.register_forward_pre_hook(before_bn))
    # The graph needs parameters that require grad; restore what the caller had.
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    was_training = model.training
    try:
        with torch.enable_grad():
            output = model.eval()(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
        for p in frozen:
            p.requires_grad_(False)

    readers = _count_readers(output.grad_fn)
    by_node = {node: conv for conv, node in conv_node.items() if calls[conv] == 1}
    pairs = []
    for bn, node in bn_input.items():
        conv = by_node.get(node)
        if conv is not None and calls[bn] == 1 and readers[node] == 1:
            pairs.append((conv, bn))
    order = list(conv_node)
    return sorted(pairs, key=lambda pair: order.index(pair[0]))


def _count_readers(root: object) -> Counter:
    """How many times each autograd node is an input of another node reachable from ``root``."""
    readers: Counter = Counter()
    seen, stack = {root}, [root]
    while stack:
        node = stack.pop()
        for child, _ in getattr(node, "next_functions", ()):
            if child is None:
                continue
            readers[child] += 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return readers


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Merge ``bn``'s eval-mode affine map into ``conv``'s weight and bias, in place.

    The arithmetic runs in float64 and rounds once to the conv's dtype, so the folded conv is as
    close to conv-then-BN as that dtype allows.
    """
    dtype = conv.weight.dtype
    w = conv.weight.detach().double()  # (C_out, C_in / groups, kH, kW)
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)  # (C_out,)
    conv.weight = nn.Parameter((w * scale.view(-1, 1, 1, 1)).to(dtype))
    conv.bias = nn.Parameter(((bias - mean) * scale + beta).to(dtype))


def fold_batchnorm(model: nn.Module, example: torch.Tensor, check: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` with every foldable BN merged into its conv.

    Each folded BN is replaced by ``nn.Identity``; BNs that cannot be folded (before a conv, as in
    pre-activation blocks, or after an addition) stay. ``model`` itself is not changed.

    Args:
        model: the network, in either mode.
        example: an input batch, used to find the conv -> BN pairs and to check the result.
        check: run ``example`` through both networks and raise if the outputs differ by more
            than ``FOLD_TOLERANCE`` relative to the largest output (a conv whose output feeds
            something the autograd graph cannot see, e.g. a non-differentiable op).

    Returns:
        The folded network, in eval mode, without gradients.
    """
    folded = copy.deepcopy(model).eval()
    for conv_name, bn_name in conv_bn_pairs(folded, example):
        fold_conv_bn(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
        parent, _, attr = bn_name.rpartition(".")
        setattr(folded.get_submodule(parent), attr, nn.Identity())
    folded.requires_grad_(False)
    if check:
        was_training = model.training
        with torch.no_grad():
            want = model.eval()(example)
            got = folded(example)
        model.train(was_training)
        err = (got - want).abs().max().item() / max(want.abs().max().item(), 1e-12)
        if err > FOLD_TOLERANCE:
            raise RuntimeError(f"BN folding changed the outputs by {err:.2e} (relative); a bug")
    return folded
