"""Measuring a trained classifier: top-1/top-5 error, per-class accuracy, confusion matrix.

```python
from resnetlab.evaluation import evaluate_classifier, write_outputs
result = evaluate_classifier(model, loader)     # any resnetlab.data loader, 10-crop included
write_outputs(result, "runs/x/eval", meta={})   # eval.json, confusion.txt, confusion.png
```
"""

from resnetlab.evaluation.evaluate import evaluate_classifier
from resnetlab.evaluation.metrics import EvalResult, MetricAccumulator
from resnetlab.evaluation.report import (
    format_confusion,
    format_summary,
    plot_confusion,
    write_outputs,
)
from resnetlab.nn.views import crop_average_log_probs

__all__ = [
    "EvalResult",
    "MetricAccumulator",
    "crop_average_log_probs",
    "evaluate_classifier",
    "format_confusion",
    "format_summary",
    "plot_confusion",
    "write_outputs",
]
