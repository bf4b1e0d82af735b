"""What every analysis experiment writes: ``results.json``, ``results.md`` and ``report.html``.

The analysis experiments (``signal``, ``shattered``, ``lesion``, ``landscape``) measure nets rather
than train them; their tables are their own, and their findings (``findings.Finding``) are the
sentences of the report, each with the numbers it rests on. ``results.json`` holds the settings,
every model's numbers, the findings and the full records the figures were drawn from; the report
shows the same findings beside the figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.records import write_json
from resnetlab.atomic import write_text
from resnetlab.experiments.common import describe_recipe, recipe_section, results_section
from resnetlab.experiments.findings import Finding
from resnetlab.experiments.nets import TrainedNets
from resnetlab.experiments.results import describe_environment, environment
from resnetlab.experiments.runner import Recipe


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def findings_part(findings: Sequence[Finding]) -> str:
    """The findings as an HTML list (nothing when there are none)."""
    return report.bullets([f.text for f in findings]) if findings else ""


def figure_part(files: FigureFiles, caption: str) -> str:
    """A figure with its own alt text and a caption."""
    return report.figure_alt(files.png, files.alt, caption)


def trained_parts(trained: TrainedNets, recipe: Recipe) -> tuple[list[str], list[str], list]:
    """For nets the experiment trained: a lead paragraph with the recipe, the table of final
    errors and the resolved recipe after the sections, and the final errors for
    ``results.json``; for nets of ``--runs``, a paragraph naming them."""
    if trained.results is None or trained.runs is None:
        names = ", ".join(f"{n.name} ({n.checkpoint})" for n in trained.nets)
        return [report.paragraph(f"The trained nets measured: {names}.")], [], []
    lead = [
        report.paragraph(
            f"The nets were trained here first. {describe_recipe(recipe, trained.runs)}"
        )
    ]
    tail = [results_section(trained.results), recipe_section(recipe, trained.runs[0])]
    return lead, tail, [r.to_dict() for r in trained.results]


def write_outputs(
    out: Path,
    title: str,
    command: str,
    *,
    settings: Mapping[str, Any],
    models: Sequence[Mapping[str, Any]],
    findings: Sequence[Finding],
    sections: Sequence[str],
    tables_md: Sequence[str],
    records: Mapping[str, Any] | None = None,
    lead: Sequence[str] = (),
    tail: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the three result files into ``out`` (atomically).

    Args:
        out: the experiment's folder.
        title: its one-line description.
        command: the command that reproduces it.
        settings: the measurement's settings (depths, data, grid, ...).
        models: each model's numbers (JSON-ready).
        findings: the report's sentences with their numbers.
        sections: the report's sections (figures, tables, findings).
        tables_md: the Markdown tables of ``results.md``.
        records: the full records the figures show (JSON-ready), under ``"records"``.
        lead: HTML shown before the sections (what was measured).
        tail: HTML shown after them (the training table and recipe of trained nets).
        extra: more fields of ``results.json`` (the final errors of trained nets).

    Returns:
        ``{"results.json": ..., "results.md": ..., "report.html": ...}``.
    """
    env = environment()
    record = {
        "title": title,
        "command": command,
        "environment": env,
        "settings": dict(settings),
        "models": list(models),
        "findings": [f.to_dict() for f in findings],
        "records": dict(records or {}),
        **(extra or {}),
    }
    lines = [f"# {title}", "", *[t + "\n" for t in tables_md]]
    if findings:
        lines += ["Findings (each generated from the numbers beside it):", ""]
        lines += [f"- {f.text}" for f in findings] + [""]
    lines += [f"Command: `{command}`", "", f"Machine: {describe_environment(env)}", ""]
    html = report.write_report(
        out / "report.html",
        title,
        [*lead, *sections, *tail, report.environment_section(env, command)],
    )
    return {
        "results.json": write_json(out / "results.json", record),
        "results.md": write_text(out / "results.md", "\n".join(lines)),
        "report.html": html,
    }
