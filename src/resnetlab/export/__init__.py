"""Exporting trained networks (ONNX, TorchScript) and checking them against eager PyTorch.

```python
from resnetlab.export import export_onnx, check_export, random_inputs
path = export_onnx(model, torch.randn(2, 3, 32, 32), "model.onnx")   # dynamic batch axis
diff = check_export(path, model, random_inputs(3, (32, 32)))          # max abs difference
```
"""

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
    "check_export",
    "export_onnx",
    "export_torchscript",
    "load_exported",
    "random_inputs",
    "verify_export",
]
