"""Named starting points for a run: the paper's two recipes, a fast one for a CPU, and one for
fine-tuning pretrained weights on a small dataset.

A preset is a partial config (nested like ``RunConfig``); the YAML file, ``--set`` and the flags
go on top of it. ``preset_values`` adds what depends on the model (the ResNet-110 warm-up) and on
the data (`fast`'s progressive resizing, flip TTA and sparser evaluations on the CIFAR sets).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from resnetlab.errors import check_choice

# §3.4 and §4.2 alike: SGD, lr 0.1, momentum 0.9, weight decay 1e-4; no Nesterov, no smoothing.
PAPER_SGD = {
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "nesterov": False,
    "label_smoothing": 0.0,
}
PRESETS: dict[str, dict[str, Any]] = {
    # §4.2: batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k, weight decay
    # 1e-4, momentum 0.9, a 45k/5k train/val split, pad-4 crop + flip. (The paper fixed this
    # schedule on the split; `--set data.val_fraction=0` trains on all 50k images.)
    "cifar-paper": {
        "iterations": 64000,
        "batch_size": 128,
        "optim": PAPER_SGD,
        "schedule": {"kind": "step", "milestones": [32000, 48000], "gamma": 0.1},
        "data": {"val_fraction": 0.1, "augment": True},
        "precision": "fp32",
        "eval_every": 1000,
        "log_every": 100,
        "checkpoint_every": 2000,
    },
    # §3.4: batch 256, lr 0.1 divided by 10 "when the error plateaus", up to 60e4 iterations,
    # weight decay 1e-4, momentum 0.9. We fix the plateaus where torchvision's recipe puts them:
    # every 30 epochs of the 1.28M ImageNet images (5005 iterations each) = 150k, 300k, 450k.
    "imagenet-paper": {
        "iterations": 600000,
        "batch_size": 256,
        "optim": PAPER_SGD,
        "schedule": {"kind": "step", "milestones": [150000, 300000, 450000], "gamma": 0.1},
        "data": {"name": "folder", "val_fraction": 0.0, "augment": True, "workers": 8},
        "precision": "auto",
        "eval_every": 5000,
        "log_every": 100,
        "checkpoint_every": 5000,
    },
    # Short runs on a CPU: one-cycle lr (a short linear ramp up, a long linear ramp down), Nesterov
    # momentum, label smoothing 0.1, bf16 where the CPU has native bf16, channels-last, 12 epochs;
    # on CIFAR-sized data also progressive resizing, flip TTA and an evaluation every third epoch
    # (FAST_ON_CIFAR). The recipe `r20-9min-e3` of benchmarks/time_to_accuracy.py, which reached
    # 85% on cifar10-jpeg in each of 3 seeds on a 2-core AMX Xeon, at 8.77, 8.69 and 8.77 minutes,
    # and at 11.7, 11.8 and 11.2 on a 2-core Zen 4 EPYC without AMX (BENCHMARKS.md, "Time to
    # accuracy").
    "fast": {
        "epochs": 12,
        "batch_size": 64,
        "optim": {
            "lr": 0.2,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "nesterov": True,
            "label_smoothing": 0.1,
        },
        "schedule": {
            "kind": "onecycle",
            "warmup_fraction": 0.2,
            "warmup_lr": 0.02,
            "final_lr": 0.0,
        },
        "precision": "auto",
        "channels_last": True,
        "log_every": 10,
    },
    # Fine-tuning pretrained weights (--weights) on a small dataset: hundreds to a few thousand
    # images. The usual transfer recipe: SGD with momentum 0.9 at a tenth of the from-scratch
    # rate (lr 0.01), because the weights start near a good solution; the backbone at a tenth
    # of the head's rate again (discriminative rates, Howard & Ruder 2018, arXiv:1801.06146),
    # because the new classifier starts from random and the pretrained layers need only small
    # moves; a short linear warm-up (5%) so that the random head's first large gradients do not
    # knock the backbone about, then cosine decay to 0; weight decay 1e-4 but none on BN and
    # bias parameters (timm's filter_bias_and_bn, torchvision's --norm-weight-decay 0); batch
    # 32, so that a few hundred images still give tens of steps per epoch; 20 epochs with
    # crop + flip augmentation. With tens of images per class, add --freeze backbone (a linear
    # probe on the pretrained features).
    "finetune": {
        "epochs": 20,
        "batch_size": 32,
        "optim": {
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "nesterov": False,
            "label_smoothing": 0.0,
            "backbone_lr_scale": 0.1,
            "no_decay_norm": True,
        },
        "schedule": {"kind": "cosine", "warmup_fraction": 0.05, "warmup_lr": 0.0, "final_lr": 0.0},
        "data": {"augment": True},
        "log_every": 10,
    },
}

# What `fast` adds on the 32x32 CIFAR sets, where it was measured: the epochs in three equal parts
# at 24, 28 and 32 pixels (0.78 of the cost per epoch), the test image scored with its mirror
# image (the augmentation flips these images already), and an evaluation every third epoch rather
# than every epoch (each takes about 4.5 s of a 9-minute run on 2 cores): 2,343 iterations, three
# times the 781 batches of 64 that the 50,000 training images make, the last part-batch dropped.
# Not elsewhere: a folder's images need not be loaded in memory, which resizing needs, a mirrored
# digit is another symbol or none, and another set's epoch has another number of iterations.
FAST_ON_CIFAR = {
    "data": {"train_sizes": [24, 28, 32]},
    "eval_tta": "flip",
    # in batches of `fast`'s 64: at another batch size, another number of epochs
    "eval_every": 3 * (50_000 // PRESETS["fast"]["batch_size"]),
}
CIFAR_SIZED = ("cifar10", "cifar10-jpeg", "cifar100")

# §4.2: "In this case [110 layers], we find that the initial learning rate of 0.1 is slightly too
# large to start converging. So we use 0.01 to warm up the training until the training error is
# below 80% (about 400 iterations), and then go back to 0.1." We apply it from depth 110 up.
RESNET110_WARMUP = {"warmup_lr": 0.01, "warmup_until_train_error": 0.8}
WARMUP_MIN_DEPTH = 110


def preset_values(
    name: str, model: str, overrides: dict[str, Any], data: str | None = None
) -> dict[str, Any]:
    """The partial config of preset ``name`` for ``model`` (with its constructor overrides) on
    the dataset ``data``."""
    check_choice("preset", name, sorted(PRESETS))
    values = copy.deepcopy(PRESETS[name])
    depth = model_depth(model, overrides)
    if name == "cifar-paper" and depth is not None and depth >= WARMUP_MIN_DEPTH:
        values["schedule"].update(RESNET110_WARMUP)
    if name == "fast" and data in CIFAR_SIZED:
        for key, value in copy.deepcopy(FAST_ON_CIFAR).items():  # sections merge, values replace
            values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return values


def model_depth(model: str, overrides: dict[str, Any]) -> int | None:
    """The depth of a registry model: ``depth=`` if given, else the number in its name."""
    depth = overrides.get("depth") if isinstance(overrides, dict) else None
    if isinstance(depth, int):
        return depth
    match = re.fullmatch(r"[a-z_]*?(\d+)", str(model))
    return int(match.group(1)) if match else None
