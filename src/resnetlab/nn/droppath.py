"""Stochastic depth: drop a residual branch at random while training (Huang et al. 2016, "Deep
Networks with Stochastic Depth", arXiv:1603.09382).

Two departures from the paper, both as timm's ``DropPath`` does: the branch is dropped per sample
rather than for the whole mini-batch, and a kept branch is scaled by ``1 / (1 - p)`` in training
instead of scaling every branch by its survival probability ``1 - p`` at test time. The expected
output is the same as the paper's, and evaluation is the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from resnetlab.errors import ConfigError


class DropPath(nn.Module):
    """Zero each sample's input with probability ``p`` in training, scale the rest by 1/(1 - p).

    Args:
        p: the drop probability, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ConfigError(
                f"drop_path_rate: a block's drop probability must be in [0, 1); got {p!r}"
            )
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # (B, 1, 1, 1): one draw per sample
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
