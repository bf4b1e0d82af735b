"""What the analyses need to know about a network, and how they leave it as they found it.

The signal, shattered-gradient, lesion and landscape analyses all take a model, look inside it and
change it for a while (train mode, BN statistics, swapped blocks, moved weights). The helpers here
name its blocks in the order they run, describe it (depth, plain or residual, with or without BN),
and restore every bit of it afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from resnetlab.errors import ConfigError
from resnetlab.nn.blocks import _ResidualBlock

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]  # (images (B, C, H, W), labels (B,)) pairs


def residual_blocks(model: nn.Module) -> list[tuple[str, _ResidualBlock]]:
    """Every basic or bottleneck block (residual or plain) with its module name, in the order the
    forward pass runs them (``layer1.0``, ``layer1.1``, ..., ``layer3.8``).

    Raises:
        ConfigError: the model has no such block.
    """
    blocks = [(n, m) for n, m in model.named_modules() if isinstance(m, _ResidualBlock)]
    if not blocks:
        raise ConfigError(
            "the model has no residual or plain blocks (a resnetlab ResNet is needed)"
        )
    return blocks


def block_shape(block: _ResidualBlock) -> tuple[int, int, int]:
    """``(in_channels, out_channels, stride)`` of a block, read from its convs."""
    branch = [
        m for m in block.modules() if isinstance(m, nn.Conv2d) and not _inside(block.downsample, m)
    ]
    stride = max(c.stride[0] for c in branch)
    return branch[0].in_channels, branch[-1].out_channels, stride


def changes_shape(block: _ResidualBlock) -> bool:
    """Whether the block's output has another shape than its input (a downsampling block)."""
    c_in, c_out, stride = block_shape(block)
    return c_in != c_out or stride != 1


def is_residual(model: nn.Module) -> bool:
    """Whether the model's blocks add their shortcuts (a ResNet) or not (its plain twin)."""
    return any(block.residual for _, block in residual_blocks(model))


def norm_of(model: nn.Module) -> str:
    """``"bn"`` if the model holds any BatchNorm, else ``"none"``."""
    return (
        "bn"
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        else "none"
    )


def depth_of(model: nn.Module) -> int:
    """Weight layers on the main path, as the paper counts them: every conv outside the
    projection shortcuts, plus the fc layers (ResNet-56: 55 convs + 1 fc)."""
    shortcuts = [b.downsample for _, b in residual_blocks(model) if b.downsample is not None]
    return sum(
        1
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not any(_inside(s, m) for s in shortcuts)
    )


def model_label(model: nn.Module) -> str:
    """``plain56``, ``resnet56``, and ``-nobn`` after either for a net without BatchNorm."""
    kind = "resnet" if is_residual(model) else "plain"
    return f"{kind}{depth_of(model)}" + ("" if norm_of(model) == "bn" else "-nobn")


def describe(model: nn.Module) -> tuple[str, int | None, bool | None, str]:
    """``(label, depth, residual, norm)`` of a resnetlab ResNet; for any other network its class
    name, ``None``, ``None`` and its norm (the analyses that take any network record these)."""
    try:
        return model_label(model), depth_of(model), is_residual(model), norm_of(model)
    except ConfigError:
        return type(model).__name__, None, None, norm_of(model)


def check_batches(batches: Batches, what: str = "batches") -> None:
    """Raise ``ConfigError`` unless ``batches`` is a non-empty, re-iterable sequence of
    ``(images, labels)`` pairs (an analysis evaluates it many times; an iterator would run dry)."""
    if not isinstance(batches, Sequence) or not batches:
        raise ConfigError(f"{what} must be a non-empty list of (images, labels) pairs")
    for images, labels in batches:
        if images.dim() != 4 or labels.dim() != 1 or len(images) != len(labels):
            raise ConfigError(
                f"{what}: each pair must be images (B, C, H, W) and labels (B,); got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Run the body, then give the model back exactly as it was: its train/eval mode, every
    parameter and buffer (BN running statistics, ``num_batches_tracked``) bit for bit, and each
    parameter's ``requires_grad``. Gradients already in ``.grad`` are not touched here; the
    analyses use ``torch.autograd.grad`` and never write them."""
    mode = {m: m.training for m in model.modules()}
    saved = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield model
    finally:
        with torch.no_grad():
            for key, value in model.state_dict(keep_vars=True).items():
                value.copy_(saved[key])
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in mode.items():
            m.training = training


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for the body (weight init draws from it) and restore the
    caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def replaced(model: nn.Module, replacement: dict[str, nn.Module]) -> Iterator[None]:
    """Put ``replacement[name]`` where the submodule ``name`` is for the body of the ``with``;
    then put the original module objects back, also on an error."""
    originals = {name: model.get_submodule(name) for name in replacement}
    try:
        for name, module in replacement.items():
            _set_submodule(model, name, module)
        yield
    finally:
        for name, module in originals.items():
            _set_submodule(model, name, module)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _inside(container: nn.Module | None, module: nn.Module) -> bool:
    return container is not None and any(m is module for m in container.modules())
