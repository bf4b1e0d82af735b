"""Feature maps of chosen stages, the surface timm users know: ``features_only=True``.

``create_model("resnet50", features_only=True, out_indices=(2, 3, 4))`` returns a
``FeatureExtractor`` whose forward gives the feature maps of those stages, with ``feature_info``
saying the channels and total stride of each. Index 0 is the stem's output (after its ReLU),
1..N the residual stages (``layer1``..``layerN``; ``stage2``..``stage5`` in the SIGNS net), as in
timm. The extractor holds the model's own modules under their own names, up to the last stage
asked for: the same weights, no classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from resnetlab.errors import ConfigError


class FeatureInfo:
    """Channels, reduction (total stride) and module name of each stage an extractor returns.

    Methods take an optional index into the returned stages and give one value, or a list of
    all of them without it (timm's ``FeatureInfo``).
    """

    def __init__(self, entries: Sequence[dict]) -> None:
        self.entries = [dict(e) for e in entries]

    def channels(self, idx: int | None = None) -> int | list[int]:
        """Output channels (timm's ``num_chs``)."""
        return self._get("num_chs", idx)

    def reduction(self, idx: int | None = None) -> int | list[int]:
        """Total stride from the input to that map."""
        return self._get("reduction", idx)

    def module_name(self, idx: int | None = None) -> str | list[str]:
        """The name of the module whose output the map is."""
        return self._get("module", idx)

    def get_dicts(self) -> list[dict]:
        """Every entry as a dict (``num_chs``, ``reduction``, ``module``, ``index``)."""
        return [dict(e) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, idx: int) -> dict:
        return dict(self.entries[idx])

    def _get(self, key: str, idx: int | None):
        return [e[key] for e in self.entries] if idx is None else self.entries[idx][key]


class FeatureExtractor(nn.Module):
    """A model cut after a chosen set of stages, returning their feature maps.

    Args:
        model: a network with a ``feature_info`` list (``ResNet``, ``SignsResNet50``) whose
            top-level modules are registered in the order its forward runs them.
        out_indices: which entries of ``model.feature_info`` to return; default all.

    Raises:
        ConfigError: a model without ``feature_info``, or an index out of range.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        stages = getattr(model, "feature_info", None)
        if not isinstance(stages, list):
            raise ConfigError(
                f"features_only needs a ResNet-style model; got {type(model).__name__}"
            )
        indices = tuple(range(len(stages))) if out_indices is None else tuple(out_indices)
        bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < len(stages)]
        if bad or not indices or len(set(indices)) != len(indices):
            raise ConfigError(
                f"out_indices must be distinct stage indices in 0..{len(stages) - 1} "
                f"({', '.join(e['module'] for e in stages)}); got {out_indices!r}"
            )
        self.out_indices = tuple(sorted(indices))
        wanted = [stages[i] | {"index": i} for i in self.out_indices]
        self.feature_info = FeatureInfo(wanted)
        self._return = {e["module"] for e in wanted}
        self.in_channels = _in_channels(model)
        last = wanted[-1]["module"]
        for name, module in model.named_children():  # in forward order, up to the last stage
            self.add_module(name, module)
            if name == last:
                break

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, H, W) -> one (B, C_i, H / r_i, W / r_i) map per index, in index order."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"input x must have shape (batch, {self.in_channels}, height, width); "
                f"got {tuple(x.shape)}"
            )
        maps = []
        for name, module in self.named_children():
            x = module(x)
            if name in self._return:
                maps.append(x)
        return maps


def _in_channels(model: nn.Module) -> int:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return first.in_channels
