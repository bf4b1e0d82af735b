"""Fine-tuning: the named parts of a model, freezing some of them, and which parameters are the
head.

A registry model's top-level modules make its parts: the stem (everything before the first
stage), the stages (``layer1``..``layerN``; ``stage2``..``stage5`` in the SIGNS net) and the head
``fc``; ``backbone`` is everything but the head. A frozen part keeps its weights (no gradient, not
in the optimizer) and its BatchNorm statistics: each of its BNs becomes a ``FrozenBatchNorm2d``,
which normalises with its running statistics whatever mode the model is put in, so the
``model.train()`` of the training loop, or of ``evaluate`` restoring the mode, cannot undo it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import ConfigError

HEAD = "fc"  # the classifier of every registry model
STAGE = re.compile(r"(layer|stage)\d+")


class FrozenBatchNorm2d(nn.Module):
    """A BatchNorm2d that always normalises with its running statistics and never updates them.

    It holds the same parameters and buffers under the same names as the ``nn.BatchNorm2d`` it
    replaces (its state dict is interchangeable), with ``requires_grad`` off. It is no subclass
    of ``BatchNorm2d`` on purpose: the SyncBatchNorm conversion of a distributed run must pass
    it by. Its output is ``BatchNorm2d.eval()``'s, bit for bit.

    Args:
        bn: the module whose tensors it takes over (shared, not copied).
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        if not (bn.affine and bn.track_running_stats):
            raise ConfigError("only affine BatchNorm2d layers with running statistics can freeze")
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.weight, self.bias = bn.weight, bn.bias
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        self.training = False

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        """Stays in eval mode: that is what frozen means."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, frozen"


def model_parts(model: nn.Module) -> dict[str, list[str]]:
    """The parts ``freeze`` knows, each as the names of the top-level modules it holds.

    The final BN of a pre-activation net goes with the last stage, whose output it normalises.
    """
    names = [name for name, _ in model.named_children()]
    stages = [n for n in names if STAGE.fullmatch(n)]
    if HEAD not in names or not stages:
        raise ConfigError(f"{type(model).__name__} has no stages and fc head to freeze")
    first = names.index(stages[0])
    parts = {"stem": names[:first]}
    for stage in stages:
        parts[stage] = [stage]
    if "bn_final" in names:
        parts[stages[-1]].append("bn_final")
    parts["backbone"] = [n for n in names if n != HEAD]
    return parts


def freeze(model: nn.Module, parts: Sequence[str], what: str = "model.freeze") -> list[str]:
    """Freeze the named parts of ``model`` in place: no gradients, BN statistics fixed.

    Call it before the optimizer is made (frozen parameters stay out of it) and before any
    distributed wrapper.

    Args:
        model: a registry model (unwrapped).
        parts: names from ``model_parts`` (``stem``, ``layer1``, ..., ``backbone``).
        what: how the user gave them, for the message.

    Returns:
        The names of the top-level modules frozen, in model order.

    Raises:
        ConfigError: a part the model does not have.
    """
    if not parts:
        return []
    known = model_parts(model)
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise ConfigError(
            f"{what}: {type(model).__name__} has no part {unknown[0]!r} "
            f"(its parts: {', '.join(known)})"
        )
    chosen = {name for p in parts for name in known[p]}
    frozen = [name for name, _ in model.named_children() if name in chosen]
    for name in frozen:
        module = getattr(model, name)
        for p in module.parameters():
            p.requires_grad_(False)
        if isinstance(module, nn.BatchNorm2d):
            setattr(model, name, FrozenBatchNorm2d(module))
        else:
            _freeze_batch_norms(module)
    return frozen


def _freeze_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child))
        else:
            _freeze_batch_norms(child)


def is_head(name: str) -> bool:
    """Whether a parameter or state key (``fc.weight``) belongs to the classifier."""
    return name == HEAD or name.startswith(f"{HEAD}.")
