"""Training: typed run configs, presets, the lr schedule, checkpoints, and the training loop.

```python
from resnetlab.train import load_config, fit
cfg = load_config(preset="fast", sets=["model.name=resnet20", "data.name=digits"])
summary = fit(cfg, "runs/digits")   # also written to runs/digits/summary.json
```
"""

from resnetlab.train.checkpoint import load_checkpoint
from resnetlab.train.config import RunConfig, config_from_dict, config_to_yaml, load_config
from resnetlab.train.loop import TrainingDiverged, evaluate, fit, train_one_epoch
from resnetlab.train.presets import PRESETS
from resnetlab.train.schedule import LRSchedule
from resnetlab.train.weights import load_weights, model_from_checkpoint, save_weights

__all__ = [
    "PRESETS",
    "LRSchedule",
    "RunConfig",
    "TrainingDiverged",
    "config_from_dict",
    "config_to_yaml",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_config",
    "load_weights",
    "model_from_checkpoint",
    "save_weights",
    "train_one_epoch",
]
