"""Exporting trained networks (ONNX, TorchScript) and checking them against eager PyTorch.

```python
from resnetlab.export import export_onnx, check_export, random_inputs, export_checkpoint
path = export_onnx(model, torch.randn(2, 3, 32, 32), "model.onnx")   # dynamic batch axis
diff = check_export(path, model, random_inputs(3, (32, 32)))          # max abs difference
out, record = export_checkpoint("runs/x", "onnx")   # checked file + out.json for serving
```
"""

from resnetlab.evaluation.preprocess import Preprocess
from resnetlab.export.bundle import export_checkpoint, sidecar_path
from resnetlab.export.check import (
    CHECK_BATCH_SIZES,
    DEFAULT_TOLERANCE,
    FORMATS,
    ExportMismatch,
    check_export,
    load_exported,
    random_inputs,
    verify_export,
)
from resnetlab.export.onnx import export_onnx
from resnetlab.export.torchscript import export_torchscript

__all__ = [
    "CHECK_BATCH_SIZES",
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "ExportMismatch",
    "Preprocess",
    "check_export",
    "export_checkpoint",
    "export_onnx",
    "export_torchscript",
    "load_exported",
    "random_inputs",
    "sidecar_path",
    "verify_export",
]
