"""An exponential moving average of the weights, evaluated in place of the trained weights.

After every optimizer step, ``ema = d * ema + (1 - d) * weights`` for every parameter and every
floating buffer, so BN's running mean and variance are averaged alike (torchvision's
``ExponentialMovingAverage`` with ``use_buffers=True``; integer buffers, BN's batch counter, are
copied). The decay at update t is ``min(decay, (1 + t) / (10 + t))``, the warm-up of TensorFlow's
``ExponentialMovingAverage(num_updates=t)``: early on, the average forgets its random start fast.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """The moving average of a model's state.

    Args:
        model: the plain model being trained (not DDP-wrapped or compiled); its copy starts the
            average.
        decay: the decay per step, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs(model)  # fails now, not mid-run, if the two differ

    def decay_at(self, t: int) -> float:
        """The decay of update ``t`` (0-based)."""
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s state by one step."""
        d = self.decay_at(self.updates)
        floats, ints = self._pairs(model)
        if floats:
            ema, live = zip(*floats, strict=True)
            torch._foreach_lerp_(ema, live, 1.0 - d)  # ema + (1 - d) * (live - ema)
        for ema_t, live_t in ints:
            ema_t.copy_(live_t)
        self.updates += 1

    def _pairs(self, model: nn.Module) -> tuple[list, list]:
        ema, live = self.module.state_dict(), model.state_dict()
        if ema.keys() != live.keys():
            raise ValueError("the EMA and the model hold different tensors")
        pairs = [(ema[k], live[k]) for k in ema]
        floats = [(e, m) for e, m in pairs if e.is_floating_point()]
        return floats, [(e, m) for e, m in pairs if not e.is_floating_point()]

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
