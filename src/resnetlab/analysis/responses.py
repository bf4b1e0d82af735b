"""Layer responses (He et al. 2015, §4.2, Figure 7): how strongly each 3x3 layer answers.

The paper plots "the standard deviations (std) of layer responses", where "the responses are the
outputs of each 3x3 layer, after BN and before other nonlinearity (ReLU/addition)". We measure
exactly that place: the output of every ``BatchNorm2d`` whose input is the output of a 3x3
convolution. In a basic block that is ``bn1`` and ``bn2`` (``bn2`` comes before the addition), in a
bottleneck ``bn2``, and the stem's ``bn1`` in the CIFAR nets (whose stem is a 3x3 conv).

Definition: the model in eval mode (BN uses its running statistics, as at test time) takes one
fixed batch; a layer's response std is the standard deviation over *all* elements of its BN output
``(B, C, H, W)`` (unbiased, in float32). The paper's argument: a residual function that is close to
zero gives small responses, so ResNets respond less than their plain twins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnetlab.errors import ConfigError


@dataclass(frozen=True)
class LayerResponses:
    """The response std of every 3x3 layer of one model, in network order.

    Attributes:
        layers: names of the BN modules that follow the 3x3 convs (``layer1.0.bn2``).
        std: (L,) standard deviation of each layer's BN output on the measured batch.
    """

    layers: tuple[str, ...]
    std: np.ndarray

    def sorted_std(self) -> np.ndarray:
        """The stds in descending order (the paper's Figure 7, bottom)."""
        return np.sort(self.std)[::-1]

    def to_dict(self) -> dict:
        """A JSON-ready record."""
        return {"layers": list(self.layers), "std": [float(s) for s in self.std]}


@torch.no_grad()
def layer_responses(model: nn.Module, images: torch.Tensor) -> LayerResponses:
    """Measure the response std of every 3x3 layer on one batch.

    Args:
        model: a network of convs and BNs (any registry model); its mode is restored afterwards.
        images: (B, C, H, W) normalised input batch on the model's device.

    Returns:
        The stds in the order the layers run.

    Raises:
        ConfigError: the model has no BN fed by a 3x3 convolution.
    """
    conv_outputs: dict[int, torch.Tensor] = {}  # id -> tensor kept alive for the forward pass
    names: list[str] = []
    stds: list[float] = []

    def after_conv(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        conv_outputs[id(output)] = output

    def after_bn(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if conv_outputs.pop(id(inputs[0]), None) is not None:
                # Measured now: an in-place ReLU may overwrite this tensor right after the hook.
                names.append(name)
                stds.append(output.detach().float().std().item())

        return hook

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (3, 3):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_hook(after_bn(name)))
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if not names:
        raise ConfigError("the model has no BatchNorm fed by a 3x3 convolution to measure")
    return LayerResponses(tuple(names), np.asarray(stds, dtype=np.float64))
