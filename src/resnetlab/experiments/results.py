"""An experiment's numbers: final errors per model over seeds, the machine, and the result files.

Every number comes from the runs' own ``summary.json`` (``final`` errors, measured by ``evaluate``
in eval mode on the whole un-augmented train and test sets at the end of each run), so the table,
``results.json``, ``results.md`` and the report all agree with the run folders.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from resnetlab.analysis.records import write_json
from resnetlab.atomic import write_text
from resnetlab.experiments.runner import RunSpec
from resnetlab.machine import cpu_isa, cpu_model, cpu_signature


@dataclass(frozen=True)
class ModelResult:
    """The final errors of one model over its seeds (fractions in [0, 1]).

    Attributes:
        label: the model's label (``plain56``).
        seeds: the seeds, in run order.
        folders: the run folders, relative to the experiment's folder.
        train_errors: final training error of each seed.
        test_errors: final test error of each seed.
    """

    label: str
    seeds: tuple[int, ...]
    folders: tuple[str, ...]
    train_errors: tuple[float, ...]
    test_errors: tuple[float, ...]

    @property
    def train_mean(self) -> float:
        return statistics.fmean(self.train_errors)

    @property
    def test_mean(self) -> float:
        return statistics.fmean(self.test_errors)

    @property
    def train_std(self) -> float:
        return spread(self.train_errors)

    @property
    def test_std(self) -> float:
        return spread(self.test_errors)

    def to_dict(self) -> dict:
        """A JSON-ready record: per-seed values and their mean and std."""
        return {
            "model": self.label,
            "runs": len(self.seeds),
            "seeds": list(self.seeds),
            "folders": list(self.folders),
            "train_error": list(self.train_errors),
            "test_error": list(self.test_errors),
            "train_error_mean": self.train_mean,
            "train_error_std": self.train_std,
            "test_error_mean": self.test_mean,
            "test_error_std": self.test_std,
        }


def spread(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def collect(summaries: Mapping[RunSpec, dict]) -> list[ModelResult]:
    """Group the runs' summaries by model label, in the order the labels first appear."""
    by_label: dict[str, list[tuple[RunSpec, dict]]] = {}
    for run, summary in summaries.items():
        by_label.setdefault(run.label, []).append((run, summary))
    return [
        ModelResult(
            label,
            tuple(run.seed for run, _ in items),
            tuple(run.folder for run, _ in items),
            tuple(float(s["final"]["train_error"]) for _, s in items),
            tuple(float(s["final"]["test_error"]) for _, s in items),
        )
        for label, items in by_label.items()
    ]


def seeds_phrase(results: Sequence[ModelResult]) -> str:
    """How the table's numbers are made from the seeds, in words: ``mean ± sample std over 3
    seeds (0, 1, 2)``; with one seed, that it shows no spread."""
    counts = sorted({len(r.seeds) for r in results})
    seeds = sorted({s for r in results for s in r.seeds})
    if counts == [1]:
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {_join(seeds)}"
        return (
            f"one run per model ({which}): there is no spread over seeds to show, and another "
            "seed or another CPU can give other numbers"
        )
    if len(counts) == 1:
        return f"mean ± sample std over {counts[0]} seeds ({_join(seeds)})"
    return f"mean ± sample std over each model's seeds ({counts[0]} to {counts[-1]})"


def _join(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def percent(mean: float, std: float, runs: int) -> str:
    """``"12.34 ± 0.56"`` (percent); the spread is left out for a single run."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if runs > 1 else f"{100 * mean:.2f}"


def table_rows(results: Sequence[ModelResult]) -> list[tuple[str, str, str, str]]:
    """(model, runs, training error %, test error %) for each model."""
    return [
        (
            r.label,
            str(len(r.seeds)),
            percent(r.train_mean, r.train_std, len(r.seeds)),
            percent(r.test_mean, r.test_std, len(r.seeds)),
        )
        for r in results
    ]


TABLE_HEADER = ("model", "runs", "final training error (%)", "final test error (%)")


def markdown_table(results: Sequence[ModelResult]) -> str:
    """The results as a Markdown table (mean ± sample std over seeds)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


def text_table(results: Sequence[ModelResult]) -> str:
    """The results as aligned plain text for the terminal."""
    rows = [TABLE_HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def environment() -> dict[str, object]:
    """The machine and the versions that made the numbers."""
    return {
        "machine": f"{platform.system()} {platform.machine()}, {cpu_model()}",
        "CPU": cpu_signature(),
        "ISA": cpu_isa(),
        "logical CPUs": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "GPU": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "matplotlib": _version("matplotlib"),
        "resnetlab": _version("resnetlab"),
    }


def machine_words(env: Mapping[str, object]) -> str:
    """The machine, with the CPU's family/model and ISA where the record has them (records
    written before they were kept have neither)."""
    extra = ", ".join(str(env[k]) for k in ("CPU", "ISA") if env.get(k))
    return f"{env['machine']} ({extra})" if extra else str(env["machine"])


def describe_environment(env: Mapping[str, object]) -> str:
    """One line: the machine, the CPU count and the versions."""
    return (
        f"{machine_words(env)}, {env['logical CPUs']} logical CPUs, GPU: {env['GPU']}; "
        f"Python {env['python']}, torch {env['torch']}"
    )


def write_results(
    out: str | Path,
    title: str,
    results: Sequence[ModelResult],
    command: str,
    env: Mapping[str, object],
    extra: Mapping[str, object] | None = None,
) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out`` (atomically).

    Args:
        out: the experiment's folder.
        title: the experiment's one-line description.
        results: the models' results.
        command: the command that reproduces them.
        env: ``environment()``.
        extra: more JSON-ready fields (the verdict, the recipe).

    Returns:
        The two paths.
    """
    out = Path(out)
    record = {
        "title": title,
        "command": command,
        "environment": dict(env),
        "models": [r.to_dict() for r in results],
        **(extra or {}),
    }
    text = (
        f"# {title}\n\n{markdown_table(results)}\n\n"
        f"Final errors measured in eval mode on the whole train and test sets at the end of each "
        f"run; {seeds_phrase(results)}.\n\n"
        f"Command: `{command}`\n\nMachine: {describe_environment(env)}\n"
    )
    return write_json(out / "results.json", record), write_text(out / "results.md", text)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
