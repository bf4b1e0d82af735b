"""The optimizer of a run: SGD with momentum and weight decay (§3.4, §4.2), built in one place.

Parameters fall into groups by two questions: does it belong to the head (``fc``) or the
backbone, whose rate is ``optim.backbone_lr_scale`` times the head's; and, with
``optim.no_decay_norm``, is it a BN or bias parameter, spared weight decay. Each group carries its
``lr_scale``; the schedule's rate times it is the group's rate at every step. With the defaults
there is one group of every trainable parameter, as in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from resnetlab.train.config import OptimConfig
from resnetlab.train.finetune import is_head


def make_optimizer(cfg: OptimConfig, params: Iterable[torch.nn.Parameter] | Iterable[dict]):
    """SGD as the config says.

    Args:
        cfg: the optim section of the run config.
        params: the parameters to train, or torch-style parameter groups (dicts with
            ``params`` and per-group settings, as ``param_groups`` makes).

    Returns:
        A ``torch.optim.SGD``; the schedule sets its lr before every step.
    """
    impl = cfg.implementation  # "auto" leaves both None: torch picks for the device
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
        foreach={"loop": False, "foreach": True}.get(impl),
        fused=True if impl == "fused" else None,
    )


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """The trainable parameters of ``model`` in groups of one lr scale and one weight decay.

    Frozen parameters (``requires_grad`` off) are left out. With ``cfg.no_decay_norm``, every
    parameter of at most one dimension (BN scales and shifts, biases) gets no weight decay, the
    rule of timm's ``param_groups_weight_decay`` and of torchvision's recipes
    (``--norm-weight-decay 0``): decay pulls a BN scale towards zero, which shrinks the layer's
    output instead of regularising it.

    Args:
        model: the plain model (no DDP or compile wrapper: names must be the model's own).
        cfg: the optim section of the run config.

    Returns:
        Groups in the order their first parameter appears in the model, each with ``params``,
        ``lr_scale`` and ``weight_decay``.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if cfg.backbone_lr_scale == 1.0 and not cfg.no_decay_norm:  # one group, as in the paper
        params = [p for _, p in trainable]
        return [{"params": params, "lr_scale": 1.0, "weight_decay": cfg.weight_decay}]
    groups: dict[tuple[bool, bool], dict] = {}
    for name, p in trainable:
        head = is_head(name)
        no_decay = cfg.no_decay_norm and p.ndim <= 1
        group = groups.setdefault(
            (head, no_decay),
            {
                "params": [],
                "lr_scale": 1.0 if head else cfg.backbone_lr_scale,
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            },
        )
        group["params"].append(p)
    return list(groups.values())
