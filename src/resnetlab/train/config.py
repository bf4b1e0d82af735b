"""The run configuration: typed dataclasses, filled from a preset, a YAML file and the command line.

Precedence, lowest first: the dataclass defaults < the preset < a caller's own defaults (an
experiment's recipe) < the YAML file < ``--set key=value`` < explicit flags (``--lr``). Reading and
merging the layers, with their type checks, is ``train.layers``. ``dataclasses.asdict(cfg)``
round-trips through YAML: the resolved config is written into every run folder and every
checkpoint, so every run can be repeated.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnetlab.errors import ConfigError, check_choice
from resnetlab.models import get_spec
from resnetlab.nn.views import TTA_VIEWS
from resnetlab.train.converters import implied_overrides
from resnetlab.train.host_memory import HOST_MEMORY
from resnetlab.train.layers import merge, nest, parse_set, read_yaml
from resnetlab.train.presets import PRESETS, preset_values

SCHEDULES = ("step", "cosine", "onecycle", "constant")
SGD_IMPLEMENTATIONS = ("auto", "loop", "foreach", "fused")
EVAL_TTA = tuple(TTA_VIEWS)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
PART_PATTERN = re.compile(r"stem|backbone|(layer|stage)\d+")  # what model.freeze may name
# The command-line options that set a config key, by argparse ``dest`` (``--batch-size`` ->
# ``batch_size``): the one table that ``train``, ``experiment`` and ``bench train`` read. Explicit
# options beat the preset, the config file and ``--set``.
FLAGS = {
    "model": "model.name",
    "data": "data.name",
    "data_dir": "data.root",
    "download": "data.download",
    "verify": "data.verify",
    "strict": "data.strict",
    "image_size": "data.image_size",
    "weights": "model.weights",
    "freeze": "model.freeze",
    "epochs": "epochs",
    "iterations": "iterations",
    "batch_size": "batch_size",
    "lr": "optim.lr",
    "device": "device",
    "precision": "precision",
    "seed": "seed",
    "channels_last": "channels_last",
    "compile": "compile",
}


@dataclass
class ModelConfig:
    name: str = "resnet20"  # a registry name (`resnetlab list`)
    # ResNet constructor arguments passed to create_model, e.g. {"shortcut": "B", "depth": 8}
    overrides: dict[str, Any] = field(default_factory=dict)
    # Start from these weights (.pt/.pth/.safetensors state dict, torchvision's included, a
    # resnetlab checkpoint, akamaster's CIFAR .th, the course's Keras .h5) instead of a random
    # init; None = He init (§3.4). A classifier of another size than the data's is re-initialised.
    weights: str | None = None
    # Parts kept fixed, BN statistics included: "stem", "layer1".."layer4" (the SIGNS net's
    # "stage2".."stage5"), or "backbone" (all but the fc head); [] = train everything.
    freeze: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    name: str = "digits"  # a dataset name (`digits`, `cifar10`, `cifar10-jpeg`, `folder`, ...)
    root: str | None = None  # the dataset's folder; None = $RESNETLAB_DATA/<name> or ./data/<name>
    val_fraction: float = 0.0  # share of the train split held out for validation (§4.2: 5k/50k)
    test_fraction: float = 0.2  # a folder without test/: share of each class held out for testing
    image_size: int | None = None  # side of digits images / folder crops; None = the dataset's own
    augment: bool = True  # random crop + flip on training batches (§4.2, §3.4)
    download: bool = False  # fetch the official archive when missing (CIFAR)
    verify: bool = True  # check the md5 sums of official files
    strict: bool = False  # an undecodable image is an error instead of a skipped file
    workers: int = 2  # decoding processes per rank (folder datasets only)
    # Share of the train split trained on: a seeded subset for quick recipe trials; 1 = all.
    train_fraction: float = 1.0
    # Progressive resizing: the run's epochs cut into len(train_sizes) equal parts, trained at
    # these image sides in turn (resized on the device after the crop and flip); evaluation
    # stays at the data's size. [] = the data's size throughout. In-memory data only.
    train_sizes: list[int] = field(default_factory=list)
    # Mixup (Zhang et al. 2017, arXiv:1710.09412): Beta(alpha, alpha) blend of each batch with a
    # permutation of itself, labels blended alike; 0 = off.
    mixup_alpha: float = 0.0
    # CutMix (Yun et al. 2019, arXiv:1905.04899): a box of a permuted batch pasted in, labels by
    # area; 0 = off. With both alphas above 0, each batch takes one of the two at random.
    cutmix_alpha: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 0.1  # peak learning rate (after any warm-up), for the global batch
    momentum: float = 0.9  # SGD momentum (§3.4, §4.2)
    weight_decay: float = 1e-4  # L2 penalty on every parameter, BN ones included, as in the paper
    nesterov: bool = False  # Nesterov momentum (needs momentum > 0)
    label_smoothing: float = 0.0  # share of the target mass spread over all classes; 0 = paper
    # The backbone's lr as a share of the head's (fc): < 1 moves pretrained layers less than a
    # new classifier (fine-tuning); 1 = one rate for all, as in the paper.
    backbone_lr_scale: float = 1.0
    # No weight decay on BN scales/shifts and biases (timm's and torchvision's recipes); False =
    # decay on every parameter, as in the paper.
    no_decay_norm: bool = False
    # torch's SGD kernels: "loop" (one parameter at a time), "foreach" (grouped tensor ops),
    # "fused" (one kernel), or "auto" (torch's default for the device). Same update, to rounding.
    implementation: str = "auto"


@dataclass
class ScheduleConfig:
    kind: str = "step"  # "step" | "cosine" | "onecycle" | "constant"
    milestones: list[int] = field(default_factory=list)  # step: iterations where lr *= gamma
    gamma: float = 0.1  # step: factor at each milestone (the paper divides by 10)
    warmup_iterations: int = 0  # linear ramp from warmup_lr up to lr over this many iterations
    warmup_fraction: float = 0.0  # the same as a share of the run, used when warmup_iterations=0
    warmup_lr: float = 0.0  # where the ramp starts; the lr held by warmup_until_train_error
    # Hold warmup_lr until the running training error falls below this, then go to lr (the
    # ResNet-110 rule of §4.2: 0.01 until the training error is below 80%); None = off.
    warmup_until_train_error: float | None = None
    final_lr: float = 0.0  # cosine and onecycle end here


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int | None = 10  # run length in passes over the train split (or give iterations)
    iterations: int | None = None  # run length in optimizer steps; setting one clears the other
    batch_size: int = 128  # GLOBAL batch: divided evenly among distributed ranks
    seed: int = 0  # seeds the initial weights, the data order and the augmentation
    device: str = "auto"  # "auto" (cuda if present, else cpu) | "cpu" | "cuda" | "cuda:N" | "mps"
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (loss scaling) | "auto" (bf16 if native)
    channels_last: bool = False  # NHWC memory format for model and batches
    compile: bool = False  # torch.compile the model (its forward, and its backward by AOTAutograd)
    # Host memory that a step frees: "keep" it in malloc for the next step (no page faults each
    # step; train.host_memory), "system" (the C library's own behaviour), "auto" (keep on CPU).
    host_memory: str = "auto"
    deterministic: bool = False  # deterministic algorithms: bit-identical reruns and resumes
    sync_bn: bool = False  # distributed: batch statistics over the global batch
    eval_every: int = 0  # iterations between evaluations; 0 = at the end of every epoch
    log_every: int = 50  # iterations between training records in metrics.jsonl
    checkpoint_every: int = 0  # iterations between checkpoints; 0 = at the end of every epoch
    keep_last: int = 3  # step-XXXXXXXX.pt files kept besides last.pt and best.pt
    grad_norms_every: int = 0  # iterations between gradient-norm records; 0 = off
    eval_train_at_end: bool = True  # measure the final train error on the un-augmented train set
    # Weight EMA: after every step ema = d * ema + (1 - d) * weights, with d = min(ema_decay,
    # (1 + t) / (10 + t)) at update t; BN running statistics averaged alike. Evaluations,
    # best.pt and `resnetlab eval` then use the EMA weights. 0 = off.
    ema_decay: float = 0.0
    # Test-time augmentation of every evaluation: "flip" scores each image by the softmax
    # averaged over it and its mirror image (as `resnetlab eval --tta flip`); "flip-shift" over
    # those two and both moved 2 pixels down-right and up-left (3x the cost); null = none.
    eval_tta: str | None = None
    tensorboard: bool = False  # also log to TensorBoard (needs the tensorboard package)
    preset: str | None = None  # the named preset this config started from (see PRESETS)


SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
}


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    sets: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Resolve a run configuration.

    Precedence, lowest first: the dataclass defaults < the preset < ``defaults`` < the file <
    ``sets`` < ``flags``. The preset (and the model it is fitted to) is found first; then every
    layer is merged once, each checked as it goes in.

    Args:
        path: a YAML file with any subset of the fields (nested as in ``RunConfig``).
        preset: a name from ``PRESETS``; ``None`` takes the ``preset`` key of the layers.
        sets: ``"key=value"`` strings with dotted keys (``optim.lr=0.05``); values are YAML.
        flags: dotted keys and values of explicit command-line flags (highest precedence).
        defaults: dotted keys and values of a caller's own recipe (an experiment's), above the
            preset and below everything the user gives.

    Returns:
        The validated config.

    Raises:
        ConfigError: an unknown key, a wrong type or a bad value, naming the key and its source.
    """
    layers = [("defaults", nest(defaults))] if defaults else []
    if path is not None:
        layers.append((str(path), read_yaml(path)))
    layers += [(f"--set {s}", parse_set(s)) for s in sets]
    if flags:
        layers.append(("flags", nest(flags)))
    if preset is None:
        preset = next((layer["preset"] for _, layer in reversed(layers) if "preset" in layer), None)
    merged = _defaults()
    if preset is not None:
        name, overrides = _model_of(layers)
        values = preset_values(preset, name, overrides, _data_of(layers))
        merge(merged, values, f"preset {preset}", field_hints())
    for source, layer in layers:
        merge(merged, layer, source, field_hints())
    merged["preset"] = preset
    weights = merged["model"]["weights"]
    if isinstance(weights, str):  # the model another program's weights need (.th: split pads)
        merged["model"]["overrides"] = implied_overrides(weights) | merged["model"]["overrides"]
    return config_from_dict(merged)


def _model_of(layers: list[tuple[str, dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    """The model name and constructor overrides the layers give (a preset depends on them)."""
    name, overrides = ModelConfig.name, {}
    for _, layer in layers:
        model = layer.get("model")
        if isinstance(model, dict):
            name = model.get("name", name)
            if isinstance(model.get("overrides"), dict):
                overrides = {**overrides, **model["overrides"]}
    return name, overrides


def _data_of(layers: list[tuple[str, dict[str, Any]]]) -> str:
    """The dataset name the layers give (`fast` depends on it)."""
    name = DataConfig.name
    for _, layer in layers:
        data = layer.get("data")
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            name = data["name"]
    return name


def config_from_dict(d: dict[str, Any], source: str = "config") -> RunConfig:
    """A validated ``RunConfig`` from a complete nested dict (``asdict`` output, a checkpoint's)."""
    full = _defaults()
    merge(full, d, source, field_hints())
    sections = {name: cls(**full[name]) for name, cls in SECTIONS.items()}
    cfg = RunConfig(**full | sections)
    validate(cfg, source if source != "config" else "")
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    """The config as YAML text (sections nested, keys in field order)."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


# The value checks that follow the type checks: (keys, what is allowed, test).
RULES = [
    (("epochs", "iterations", "batch_size", "log_every", "data.image_size"), "at least 1",
     lambda v: v is None or v >= 1),
    (("eval_every", "checkpoint_every", "keep_last", "grad_norms_every", "data.workers",
      "schedule.warmup_iterations", "optim.weight_decay", "schedule.warmup_lr",
      "schedule.final_lr", "optim.backbone_lr_scale"), "at least 0", lambda v: v >= 0),
    (("optim.lr", "schedule.gamma"), "positive", lambda v: v > 0),
    (("data.val_fraction", "data.test_fraction", "optim.momentum", "optim.label_smoothing",
      "schedule.warmup_fraction", "ema_decay"), "in [0, 1)", lambda v: 0 <= v < 1),
    (("data.train_fraction",), "in (0, 1]", lambda v: 0 < v <= 1),
    (("data.mixup_alpha", "data.cutmix_alpha"), "at least 0", lambda v: v >= 0),
    (("data.train_sizes",), "image sides of at least 1", lambda v: all(x >= 1 for x in v)),
    (("schedule.warmup_until_train_error",), "in (0, 1] or null",
     lambda v: v is None or 0 < v <= 1),
    (("schedule.milestones",), "increasing positive iterations",
     lambda m: all(x >= 1 for x in m) and m == sorted(set(m))),
    (("seed",), "in [0, 2**32)", lambda v: 0 <= v < 2**32),  # numpy's seed range
    (("model.freeze",), "part names (stem, layer1..layer4, stage2..stage5, backbone)",
     lambda v: all(PART_PATTERN.fullmatch(p) for p in v)),
    (("device",), "auto, cpu, cuda, cuda:N or mps", lambda v: bool(DEVICE_PATTERN.match(v))),
]  # fmt: skip


def validate(cfg: RunConfig, source: str = "") -> None:
    """Raise ``ConfigError`` for values of the right type that make no sense.

    Args:
        cfg: the config.
        source: where it came from (a file name), to start the message; empty for none.
    """
    where = f"{source}: " if source else ""
    check_choice(f"{where}schedule.kind", cfg.schedule.kind, SCHEDULES)
    check_choice(f"{where}precision", cfg.precision, PRECISIONS)
    check_choice(f"{where}optim.implementation", cfg.optim.implementation, SGD_IMPLEMENTATIONS)
    check_choice(f"{where}host_memory", cfg.host_memory, HOST_MEMORY)
    if cfg.eval_tta is not None:
        check_choice(f"{where}eval_tta", cfg.eval_tta, EVAL_TTA)
    if cfg.preset is not None:
        check_choice(f"{where}preset", cfg.preset, sorted(PRESETS))
    for keys, rule, test in RULES:
        for key in keys:
            if not test(value := _get(cfg, key)):
                raise ConfigError(f"{where}{key} must be {rule}; got {value!r}")
    if (cfg.epochs is None) == (cfg.iterations is None):
        raise ConfigError(
            f"{where}epochs/iterations must be exactly one of the two; "
            f"got {(cfg.epochs, cfg.iterations)!r}"
        )
    if cfg.optim.nesterov and cfg.optim.momentum <= 0:
        raise ConfigError(
            f"{where}optim.momentum must be positive with nesterov; got {cfg.optim.momentum!r}"
        )
    get_spec(cfg.model.name)  # an unknown name raises, with the closest registered ones


def _defaults() -> dict[str, Any]:
    return dataclasses.asdict(RunConfig())


@functools.cache
def field_hints() -> dict[str, Any]:
    """The type of every dotted key: ``{"epochs": int | None, "optim.lr": float, ...}``."""
    hints = {}
    for key, hint in typing.get_type_hints(RunConfig).items():
        if key in SECTIONS:
            for sub, sub_hint in typing.get_type_hints(SECTIONS[key]).items():
                hints[f"{key}.{sub}"] = sub_hint
        else:
            hints[key] = hint
    return hints


def _get(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node
