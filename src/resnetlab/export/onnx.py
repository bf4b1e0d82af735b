"""ONNX export with the ``torch.export``-based exporter and a dynamic batch axis.

The graph takes one input named ``input``, a (batch, C, H, W) float32 tensor already normalised,
and returns ``logits`` (batch, num_classes); the batch size is free, the image size is fixed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from resnetlab.atomic import atomic_write
from resnetlab.export.check import eval_mode

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Write ``model`` as an ONNX file that runs in ONNX Runtime for any batch size.

    The model is exported in eval mode (BN uses its running statistics) and left in the mode it
    had. The file is self-contained (weights inside, no external-data files) and written
    atomically.

    Args:
        model: the network, on the CPU, in fp32.
        example: a (B, C, H, W) input that fixes C, H and W; its batch size does not matter.
        path: the ``.onnx`` file to write.

    Returns:
        ``path`` as a ``Path``.
    """
    import onnx

    path = Path(path)
    batch = torch.export.Dim("batch")
    with eval_mode(model), _quiet_exporter():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            verbose=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
        )
    proto = program.model_proto  # one protobuf: fine below 2 GB (ResNet-152 is 0.24 GB)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    onnx.checker.check_model(str(path))
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notes that are about torch itself, not about the user's model.

    torch logs that optional torchvision operators are skipped (we use none) and warns about a
    deprecated pytree call inside torch.export; neither is actionable here.
    """
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)
