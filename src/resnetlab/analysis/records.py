"""Reading the records a run writes (JSON, JSON lines); writing JSON result files atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from resnetlab.atomic import write_text
from resnetlab.errors import DataError


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``; a missing or malformed file raises ``DataError`` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON (line {err.lineno})") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, one per non-empty line.

    A last line cut short (a run killed while writing it) is skipped; a bad line anywhere else
    raises ``DataError`` naming the file and the line.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise DataError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def write_json(path: str | Path, value: Any) -> Path:
    """``value`` as indented JSON, written atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n")


def json_numbers(values: Any) -> Any:
    """A number, or nested lists/arrays of numbers, as plain floats with NaN and infinities as
    ``None`` (JSON has neither)."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [json_numbers(v) for v in values]
    value = float(values)
    return value if math.isfinite(value) else None


def from_json_numbers(values: Any) -> Any:
    """The inverse of ``json_numbers``: a number (``None`` as NaN) as a float, nested lists as a
    float64 array."""
    if values is None:
        return math.nan
    if isinstance(values, (list, tuple)):
        return np.array(values, dtype=np.float64)  # None becomes NaN
    return float(values)
