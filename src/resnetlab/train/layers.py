"""The layers of a run config, read and merged: a YAML file, ``--set`` strings, flag values.

YAML is read with ``yaml.safe_load`` (no Python tags) and refused when it nests too deeply or
expands to too many values; every value is checked against the type of its field as it is merged.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from resnetlab.data.files import file_problem
from resnetlab.errors import ConfigError

LENGTH_KEYS = ("epochs", "iterations")
# A config holds about 60 values; a document that expands to more is an alias bomb
# ("billion laughs": a few lines of nested YAML aliases that copy out to billions of items).
MAX_YAML_VALUES = 100_000


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; a missing, unreadable or malformed file raises."""
    if problem := file_problem(path, "config file"):  # a FIFO would block the read
        raise ConfigError(problem)
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"), str(path))
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


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load``, refusing documents nested too deeply or expanding to too many values."""
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    except yaml.constructor.ConstructorError as err:
        if "constructor for the tag" not in str(err.problem):
            raise
        tag = str(err.problem).split("for the tag", 1)[1].strip(" '")
        where = f" at line {err.problem_mark.line + 1}" if err.problem_mark else ""
        raise ConfigError(
            f"{source}: the YAML tag {tag!r}{where} is not allowed (only plain values are)"
        ) from None
    except ValueError as err:  # int() of a number past Python's digit limit; a bad date
        what = "an integer too long to read" if "digits" in str(err) else f"a bad value ({err})"
        raise ConfigError(f"{source}: {what}") from None
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


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 0.1}`` -> ``{"optim": {"lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def merge(
    base: dict[str, Any],
    layer: dict[str, Any],
    source: str,
    hints: Mapping[str, Any],
    prefix: str = "",
) -> None:
    """Write ``layer`` over ``base`` in place, each value checked against its type in ``hints``.

    Sections recurse; ``model.overrides`` merges keys; ``epochs`` and ``iterations`` are one
    length given two ways, so a layer that gives either replaces both.
    """
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
            merge(base[key], value, source, hints, f"{name}.")
        elif name == "model.overrides" and isinstance(value, dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = _check_type(name, value, hints[name], source)


def _suggest(key: str, base: dict[str, Any], prefix: str) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in base], n=3, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(prefix + c for c in close)}?"
    return f"; known keys: {', '.join(prefix + str(k) for k in base)}"


def _check_type(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` if it has the type ``hint`` (an int is taken as a float), else ``ConfigError``.

    Integers must fit in 64 bits and numbers must be finite: ``inf`` passes no range check that
    a NaN fails, and a 5,000-digit integer cannot even be printed in an error message.
    """
    if isinstance(value, int) and not isinstance(value, bool) and not _fits(value):
        raise ConfigError(
            f"{source}: {key} must be an integer of at most 64 bits; got {_show(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a finite number; got {value!r}")
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        ok, converted = _matches(value, option)
        if ok:
            return converted
    names = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"{source}: {key} must be {names}; got {_show(value)}")


def _fits(value: int) -> bool:
    return -(2**63) <= value < 2**63


def _show(value: Any) -> str:
    """``repr(value)`` cut to 80 characters; an integer too long to print is described instead."""
    if isinstance(value, int) and not isinstance(value, bool) and not _fits(value):
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except ValueError:  # a huge integer inside a list or mapping
        return f"a {type(value).__name__} holding an integer too long to print"
    return text if len(text) <= 80 else text[:77] + "..."


def _matches(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and _fits(value), value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            value = _float_or_none(value) or value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (_fits(value) if isinstance(value, int) else math.isfinite(value))
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
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return "a list of integers" if item is int else "a list of strings"
    return "a mapping"


def parse_set(item: str) -> dict[str, Any]:
    """``"optim.lr=0.05"`` -> ``{"optim": {"lr": 0.05}}``; the value is read as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. optim.lr=0.05); got {item!r}")
    try:
        value = load_yaml(text, f"--set {key.strip()}") if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: cannot read {text!r} as a value") from None
    return nest({key.strip(): value})
