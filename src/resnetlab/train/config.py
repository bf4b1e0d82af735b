"""The run configuration: typed dataclasses, filled from a preset, a YAML file and the command line.

Precedence, lowest first: the dataclass defaults < the preset < the YAML file < ``--set key=value``
< explicit flags (``--lr``). ``dataclasses.asdict(cfg)`` round-trips through YAML: the resolved
config is written into every run folder and every checkpoint, so every run can be repeated.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnetlab.errors import ConfigError, check_choice
from resnetlab.models import get_spec

SCHEDULES = ("step", "cosine", "onecycle", "constant")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
LENGTH_KEYS = ("epochs", "iterations")
# A config holds about 60 values; a document that expands to more is an alias bomb
# ("billion laughs": a few lines of nested YAML aliases that copy out to billions of items).
MAX_YAML_VALUES = 100_000


@dataclass
class ModelConfig:
    name: str = "resnet20"  # a registry name (`resnetlab list`)
    # ResNet constructor arguments passed to create_model, e.g. {"shortcut": "B", "depth": 8}
    overrides: dict[str, Any] = field(default_factory=dict)
    # Start from these weights (.pt/.pth/.safetensors state dict, torchvision's included, or a
    # resnetlab checkpoint) instead of a random init; None = He init (§3.4).
    weights: str | None = None


@dataclass
class DataConfig:
    name: str = "digits"  # a dataset name (`digits`, `cifar10`, `cifar10-jpeg`, `folder`, ...)
    root: str | None = None  # the dataset's folder; None = $RESNETLAB_DATA/<name> or ./data/<name>
    val_fraction: float = 0.0  # share of the train split held out for validation (§4.2: 5k/50k)
    image_size: int | None = None  # side of digits images / folder crops; None = the dataset's own
    augment: bool = True  # random crop + flip on training batches (§4.2, §3.4)
    download: bool = False  # fetch the official archive when missing (CIFAR)
    verify: bool = True  # check the md5 sums of official files
    strict: bool = False  # an undecodable image is an error instead of a skipped file
    workers: int = 2  # decoding processes per rank (folder datasets only)


@dataclass
class OptimConfig:
    lr: float = 0.1  # peak learning rate (after any warm-up), for the global batch
    momentum: float = 0.9  # SGD momentum (§3.4, §4.2)
    weight_decay: float = 1e-4  # L2 penalty on every parameter, BN ones included, as in the paper
    nesterov: bool = False  # Nesterov momentum (needs momentum > 0)
    label_smoothing: float = 0.0  # share of the target mass spread over all classes; 0 = paper


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
    compile: bool = False  # torch.compile the model
    deterministic: bool = False  # deterministic algorithms: bit-identical reruns and resumes
    sync_bn: bool = False  # distributed: batch statistics over the global batch
    eval_every: int = 0  # iterations between evaluations; 0 = at the end of every epoch
    log_every: int = 50  # iterations between training records in metrics.jsonl
    checkpoint_every: int = 0  # iterations between checkpoints; 0 = at the end of every epoch
    keep_last: int = 3  # step-XXXXXXXX.pt files kept besides last.pt and best.pt
    grad_norms_every: int = 0  # iterations between gradient-norm records; 0 = off
    eval_train_at_end: bool = True  # measure the final train error on the un-augmented train set
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
    sets: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> RunConfig:
    """Resolve a run configuration.

    Args:
        path: a YAML file with any subset of the fields (nested as in ``RunConfig``).
        preset: a name from ``PRESETS``; ``None`` takes the ``preset`` key of the file or sets.
        sets: ``"key=value"`` strings with dotted keys (``optim.lr=0.05``); values are YAML.
        flags: dotted keys and values of explicit command-line flags (highest precedence).

    Returns:
        The validated config.

    Raises:
        ConfigError: an unknown key, a wrong type or a bad value, naming the key and its source.
    """
    from resnetlab.train.presets import preset_values

    layers = []
    if path is not None:
        layers.append((str(path), _read_yaml(path)))
    layers += [(f"--set {s}", parse_set(s)) for s in sets]
    if flags:
        layers.append(("flags", _nest(flags)))
    raw = _defaults()
    for source, layer in layers:
        _merge(raw, layer, source)
    preset = preset if preset is not None else raw["preset"]
    merged = _defaults()
    if preset is not None:
        _merge(
            merged,
            preset_values(preset, raw["model"]["name"], raw["model"]["overrides"]),
            f"preset {preset}",
        )
    for source, layer in layers:
        _merge(merged, layer, source)
    merged["preset"] = preset
    return config_from_dict(merged)


def config_from_dict(d: dict[str, Any], source: str = "config") -> RunConfig:
    """A validated ``RunConfig`` from a complete nested dict (``asdict`` output, a checkpoint's)."""
    full = _defaults()
    _merge(full, d, source)
    sections = {name: cls(**full[name]) for name, cls in SECTIONS.items()}
    cfg = RunConfig(**full | sections)
    validate(cfg, source if source != "config" else "")
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    """The config as YAML text (sections nested, keys in field order)."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


def parse_set(item: str) -> dict[str, Any]:
    """``"optim.lr=0.05"`` -> ``{"optim": {"lr": 0.05}}``; the value is read as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. optim.lr=0.05); got {item!r}")
    try:
        value = _load_yaml(text, f"--set {key.strip()}") if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: cannot read {text!r} as a value") from None
    return _nest({key.strip(): value})


# The value checks that follow the type checks: (keys, what is allowed, test).
RULES = [
    (("epochs", "iterations", "batch_size", "log_every", "data.image_size"), "at least 1",
     lambda v: v is None or v >= 1),
    (("eval_every", "checkpoint_every", "keep_last", "grad_norms_every", "data.workers",
      "schedule.warmup_iterations", "optim.weight_decay", "schedule.warmup_lr",
      "schedule.final_lr"), "at least 0", lambda v: v >= 0),
    (("optim.lr", "schedule.gamma"), "positive", lambda v: v > 0),
    (("data.val_fraction", "optim.momentum", "optim.label_smoothing",
      "schedule.warmup_fraction"), "in [0, 1)", lambda v: 0 <= v < 1),
    (("schedule.warmup_until_train_error",), "in (0, 1] or null",
     lambda v: v is None or 0 < v <= 1),
    (("schedule.milestones",), "increasing positive iterations",
     lambda m: all(x >= 1 for x in m) and m == sorted(set(m))),
    (("seed",), "in [0, 2**32)", lambda v: 0 <= v < 2**32),  # numpy's seed range
    (("device",), "auto, cpu, cuda, cuda:N or mps", lambda v: bool(DEVICE_PATTERN.match(v))),
]  # fmt: skip


def validate(cfg: RunConfig, source: str = "") -> None:
    """Raise ``ConfigError`` for values of the right type that make no sense.

    Args:
        cfg: the config.
        source: where it came from (a file name), to start the message; empty for none.
    """
    from resnetlab.train.presets import PRESETS

    where = f"{source}: " if source else ""
    check_choice(f"{where}schedule.kind", cfg.schedule.kind, SCHEDULES)
    check_choice(f"{where}precision", cfg.precision, PRECISIONS)
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


# ----------------------------------------------------------------------------------------------
# Merging and type checks
# ----------------------------------------------------------------------------------------------
def _defaults() -> dict[str, Any]:
    return dataclasses.asdict(RunConfig())


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = _load_yaml(Path(path).read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of keys; got {data!r:.60}")
    return data


def _load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load``, refusing documents nested too deeply or expanding to too many values."""
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    stack, count = [data], 0
    while stack:  # iterative: a self-referencing alias must not recurse either
        node = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise ConfigError(f"{source}: more than {MAX_YAML_VALUES} values (YAML aliases?)")
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            stack += node
    return data


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 0.1}`` -> ``{"optim": {"lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _merge(base: dict[str, Any], layer: dict[str, Any], source: str, prefix: str = "") -> None:
    """Write ``layer`` over ``base`` in place; sections recurse, ``model.overrides`` merges keys."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    if not prefix and any(k in layer for k in LENGTH_KEYS):
        # epochs and iterations are two ways of giving one length: the later layer wins whole.
        # Both are cleared here; the loop below sets (and type-checks) the one given.
        for k in LENGTH_KEYS:
            base[k] = None
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"{source}: unknown key {name!r}{_suggest(key, base, prefix)}")
        if isinstance(base[key], dict) and name != "model.overrides":
            _merge(base[key], value, source, f"{name}.")
        elif name == "model.overrides" and isinstance(value, dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = _check_type(name, value, _field_hints()[name], source)


def _suggest(key: str, base: dict[str, Any], prefix: str) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in base], n=3, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(prefix + c for c in close)}?"
    return f"; known keys: {', '.join(prefix + str(k) for k in base)}"


@functools.cache
def _field_hints() -> dict[str, Any]:
    """The type of every dotted key: ``{"epochs": int | None, "optim.lr": float, ...}``."""
    hints = {}
    for key, hint in typing.get_type_hints(RunConfig).items():
        if key in SECTIONS:
            for sub, sub_hint in typing.get_type_hints(SECTIONS[key]).items():
                hints[f"{key}.{sub}"] = sub_hint
        else:
            hints[key] = hint
    return hints


def _check_type(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` if it has the type ``hint`` (an int is taken as a float), else ``ConfigError``."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        ok, converted = _matches(value, option)
        if ok:
            return converted
    names = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"{source}: {key} must be {names}; got {value!r}")


def _matches(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            value = _float_or_none(value) or value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin is list:
        (item,) = typing.get_args(hint)
        ok = isinstance(value, list) and all(_matches(v, item)[0] for v in value)
        return ok, [_matches(v, item)[1] for v in value] if ok else value
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value), value
    raise TypeError(f"no type check for {hint!r}")


def _float_or_none(text: str) -> float | None:
    """``"1e-3"`` -> 0.001; ``None`` for anything that is not a finite number."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _type_name(hint: Any) -> str:
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        type(None): "null",
    }
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    return "a list of integers" if origin is list else "a mapping"


def _get(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node
