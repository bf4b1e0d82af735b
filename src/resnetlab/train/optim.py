"""The optimizer of a run: SGD with momentum and weight decay (§3.4, §4.2), built in one place."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from resnetlab.train.config import OptimConfig


def make_optimizer(cfg: OptimConfig, params: Iterable[torch.nn.Parameter] | Iterable[dict]):
    """SGD as the config says.

    Args:
        cfg: the optim section of the run config.
        params: the parameters to train, or torch-style parameter groups (dicts with
            ``params`` and per-group settings).

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
