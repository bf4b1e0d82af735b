"""Grad-CAM: where in an image the evidence for a class lies (Selvaraju et al. 2017, "Grad-CAM:
Visual Explanations from Deep Networks via Gradient-based Localization", arXiv:1610.02391).

For the feature maps ``A`` (B, K, h, w) of one layer and the score ``y^c`` of class c (its logit,
before the softmax, as the paper takes it), each map's weight is the spatial mean of the
score's gradient, ``alpha_k = mean_ij dy^c / dA_kij`` (their Eq. 1), and the map is
``L^c = ReLU(sum_k alpha_k A_k)`` (Eq. 2), upsampled bilinearly to the input's size. The default
layer is the last stage: its maps are the coarsest and the most class-specific, as the paper
recommends the last convolutional layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import ConfigError


@dataclass(frozen=True)
class GradCAM:
    """Grad-CAM maps of a batch.

    Attributes:
        layer: the module whose output was explained (``layer4``).
        classes: (B,) the class explained in each image.
        probs: (B, num_classes) the softmax of the model's logits.
        cam: (B, h, w) ``L^c`` at the layer's resolution, unscaled.
        heatmap: (B, H, W) ``L^c`` upsampled to the input size and divided by each image's
            maximum, in [0, 1] (all zeros where ``L^c`` is zero everywhere).
    """

    layer: str
    classes: torch.Tensor
    probs: torch.Tensor
    cam: torch.Tensor
    heatmap: torch.Tensor


def default_layer(model: nn.Module) -> str:
    """The last stage of a registry model (``layer4``, ``layer3`` for CIFAR nets, ``stage5``)."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ConfigError(f"{type(model).__name__}: no stages known; name a layer to explain")
    return info[-1]["module"]


def gradcam(
    model: nn.Module,
    images: torch.Tensor,
    *,
    layer: str | None = None,
    class_index: int | Sequence[int] | None = None,
) -> GradCAM:
    """Grad-CAM of ``images`` for one class each.

    Args:
        model: any registry model (or a network with a named layer of 4-D output); it runs in
            eval mode, which is restored afterwards. Its weights get no gradient.
        images: (B, C, H, W) normalised inputs on the model's device.
        layer: the module to explain, by its name in ``model.named_modules()``; default the
            last stage (``default_layer``).
        class_index: the class to explain, one for all images or one per image; default each
            image's most probable class.

    Returns:
        The maps, the classes explained and the probabilities.

    Raises:
        ConfigError: an unknown layer, a layer whose output is not (B, K, h, w), or a class
            out of range.
    """
    name = default_layer(model) if layer is None else layer
    module = dict(model.named_modules()).get(name)
    if module is None or name == "":
        stages = [e["module"] for e in getattr(model, "feature_info", [])]
        raise ConfigError(f"--layer {name!r}: no such module (the stages: {', '.join(stages)})")
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, out: seen.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # An input that needs a gradient gives the maps one even if every weight is frozen.
            logits = model(images.detach().clone().requires_grad_(True)).float()  # (B, K)
            classes = _classes(class_index, logits)
            maps = _check_maps(seen, name)  # (B, K, h, w)
            score = logits.gather(1, classes[:, None]).sum()  # images are independent in eval
            (grads,) = torch.autograd.grad(score, maps)  # (B, K, h, w)
    finally:
        handle.remove()
        model.train(was_training)
    alpha = grads.float().mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1): Eq. 1
    cam = torch.relu((alpha * maps.detach().float()).sum(dim=1))  # (B, h, w): Eq. 2
    heat = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)
    heat = heat[:, 0].clamp(min=0)  # (B, H, W)
    peak = heat.flatten(1).amax(dim=1).clamp(min=torch.finfo(heat.dtype).tiny)
    heatmap = heat / peak[:, None, None]
    probs = torch.softmax(logits.detach(), dim=1)
    return GradCAM(name, classes.cpu(), probs.cpu(), cam.cpu(), heatmap.cpu())


def _classes(class_index: int | Sequence[int] | None, logits: torch.Tensor) -> torch.Tensor:
    b, k = logits.shape
    if class_index is None:
        return logits.argmax(dim=1)
    chosen = [class_index] * b if isinstance(class_index, int) else list(class_index)
    if len(chosen) != b or not all(isinstance(c, int) and 0 <= c < k for c in chosen):
        raise ConfigError(f"--class must be a class index in 0..{k - 1}; got {class_index!r}")
    return torch.tensor(chosen, device=logits.device)


def _check_maps(seen: list[torch.Tensor], name: str) -> torch.Tensor:
    if len(seen) != 1 or not isinstance(seen[0], torch.Tensor) or seen[0].dim() != 4:
        raise ConfigError(
            f"--layer {name}: Grad-CAM needs a module that runs once and outputs (B, K, h, w) maps"
        )
    return seen[0]
