"""A table of every layer: output shape, parameters and multiply-adds (the FLOPs of Table 1).

Multiply-adds count what the paper's Table 1 counts: one per weight of a convolution or fully
connected layer per output position. BN, ReLU, pooling and additions are left out, as there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from resnetlab.errors import ConfigError


@dataclass
class LayerRow:
    """One leaf module of the network, as it ran on a single image."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class ModelSummary:
    """Every layer and the totals for one input size."""

    model: str
    input_size: tuple[int, int]
    num_classes: int
    layers: list[LayerRow] = field(default_factory=list)
    params: int = 0
    trainable_params: int = 0
    buffers: int = 0
    macs: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def format_table(self, totals_only: bool = False) -> str:
        """The table as text, aligned in columns, totals last."""
        lines = []
        if not totals_only:
            head = ("layer", "type", "output shape", "params", "mult-adds")
            rows = [
                (r.name, r.type, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}")
                for r in self.layers
            ]
            widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
            for i, row in enumerate([head, *rows]):
                lines.append(
                    "  ".join(
                        str(c).rjust(w) if k >= 3 else str(c).ljust(w)
                        for k, (c, w) in enumerate(zip(row, widths, strict=True))
                    ).rstrip()
                )
                if i == 0:
                    lines.append("-" * len(lines[-1]))
            lines.append("")
        h, w = self.input_size
        lines += [
            f"model         {self.model}  (input 3x{h}x{w}, {self.num_classes} classes)",
            f"parameters    {self.params:,}  (trainable {self.trainable_params:,})",
            f"buffers       {self.buffers:,}",
            f"mult-adds     {self.macs:,}  ({self.macs / 1e9:.3g} G)",
        ]
        return "\n".join(lines)


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one leaf module for one image, given its output."""
    per_image = output[0].numel()
    if isinstance(module, nn.Conv2d):
        k_h, k_w = module.kernel_size
        return per_image * (module.in_channels // module.groups) * k_h * k_w
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


def summarize(
    model: nn.Module,
    input_size: tuple[int, int],
    in_channels: int = 3,
    name: str = "",
    num_classes: int | None = None,
) -> ModelSummary:
    """Run one image through ``model`` and record every leaf module.

    Args:
        model: the network (left in the train/eval mode it was in).
        input_size: (H, W) of the input image.
        in_channels: channels of the input image.
        name: the model's name, for the report.
        num_classes: for the report; read from the output if ``None``.
    """
    if len(input_size) != 2 or any(not isinstance(s, int) or s < 1 for s in input_size):
        raise ConfigError(f"input size must be two positive integers H W; got {input_size!r}")
    rows: list[LayerRow] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        rows.append(
            LayerRow(
                name=names[module],
                type=type(module).__name__,
                output_shape=tuple(output.shape[1:]),
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                macs=layer_macs(module, output),
            )
        )

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(1, in_channels, *input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return ModelSummary(
        model=name or type(model).__name__,
        input_size=tuple(input_size),
        num_classes=num_classes if num_classes is not None else out.shape[-1],
        layers=rows,
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        buffers=sum(b.numel() for b in model.buffers()),
        macs=sum(r.macs for r in rows),
    )
