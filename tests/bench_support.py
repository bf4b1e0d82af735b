"""Helpers for tests of the scripts in benchmarks/ (a folder of scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    """Import benchmarks/<name>.py once, under its own name.

    The name matters: DataLoader workers find a script's Dataset class by module name, and the
    GPU suite's scripts import one another by name.
    """
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the Markdown table(s), as lists of cells."""
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row] for row in rows[1:]]  # without the header
