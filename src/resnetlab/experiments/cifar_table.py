"""``resnetlab experiment cifar-table``: the paper's Table 6 sweep (CIFAR-10 ResNets by depth).

The ResNets of §4.2 (and, with ``--plain``, their plain twins) train with the ``cifar-paper``
recipe; ``--iterations`` cuts the run short with the lr drops kept at 50% and 75% of it. The table
(parameters, final errors as mean ± std over seeds, the paper's test error) goes into the
experiment's files and, with the command, machine and versions, into a marked block of
RESULTS.md that a rerun with the same data and length replaces in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from resnetlab.analysis import report
from resnetlab.atomic import write_text
from resnetlab.errors import DataError
from resnetlab.experiments.common import (
    curves_figure,
    data_defaults,
    describe_recipe,
    finish,
    recipe_section,
    train_and_collect,
)
from resnetlab.experiments.results import (
    ModelResult,
    describe_environment,
    environment,
    percent,
)
from resnetlab.experiments.runner import (
    Recipe,
    RunSpec,
    cifar_runs,
    config_for,
    fit_preset_to_length,
)
from resnetlab.train.weights import model_from_checkpoint

TITLE = "CIFAR ResNets by depth (Table 6)"
# Table 6: test error (%) of the ResNets on CIFAR-10 (110: best of 5 runs; mean 6.61 ± 0.16).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
PRESET = "cifar-paper"
PAPER_ITERATIONS = 64000  # §4.2: "terminate training at 64k iterations"


def defaults(data: str) -> tuple[str | None, dict]:
    """The experiment's (preset, recipe defaults): the paper's CIFAR recipe."""
    return PRESET, data_defaults(data)


HEADER = (
    "model",
    "params",
    "runs",
    "final training error (%)",
    "final test error (%)",
    "paper test error (%)",
)


def plan(depths: Sequence[int], seeds: Sequence[int], plain: bool = False) -> list[RunSpec]:
    """ResNets (and plain nets) of each depth, shallow to deep, every seed."""
    return cifar_runs(("resnet", "plain") if plain else ("resnet",), depths, seeds)


def run(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe: Recipe,
    out: str | Path,
    *,
    plain: bool = False,
    results_md: str | Path | None = None,
    jobs: int = 1,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Train the sweep (skipping finished runs), write the outputs and the RESULTS.md block.

    Args:
        depths: depths 6n+2.
        seeds: seeds of every model.
        recipe: the recipe (``cifar-paper`` unless the user chose another).
        out: the experiment's folder.
        plain: also train the plain twins.
        results_md: the Markdown file whose marked block receives the table; ``None``: none.
        jobs: runs trained side by side.
        command: the command line that reproduces the experiment.
        log: where progress and results go.

    Returns:
        ``{"results": [ModelResult], "rows": [...], "files": {name: path}}``.
    """
    out = Path(out)
    runs = plan(depths, seeds, plain)
    recipe = fit_preset_to_length(recipe, runs[0])
    results = train_and_collect(runs, recipe, out, jobs, log)
    params = {
        r.label: sum(p.numel() for p in model_from_checkpoint(out / r.folders[0])[0].parameters())
        for r in results
    }
    rows = table_rows(results, params)
    labels = [r.label for r in results]
    groups = {"ResNets": [x for x in labels if x.startswith("resnet")]}
    if plain:
        groups["plain nets"] = [x for x in labels if x.startswith("plain")]
    curves = curves_figure(out, runs, groups, title=TITLE)
    cfg = config_for(recipe, runs[0])
    parts = [
        report.section("Table 6", report.table(HEADER, rows), report.paragraph(_data_note(cfg))),
        report.section("Training curves", report.figure(curves, "Mean over seeds.")),
        recipe_section(recipe, runs[0]),
    ]
    lead = [report.paragraph(describe_recipe(recipe, runs))]
    files = finish(out, TITLE, results, command, parts, lead=lead, extra={"parameters": params})
    if results_md is not None:
        key = f"{cfg.data.name}, {_length(cfg)}"
        update_block(Path(results_md), f"cifar-table: {key}", markdown(rows, key, cfg, command))
        log(f"{results_md}: table for {key} written")
    log(f"report: {files['report.html']}")
    return {"results": results, "rows": rows, "files": files}


def table_rows(results: Sequence[ModelResult], params: dict[str, int]) -> list[tuple[str, ...]]:
    """One row per model: name, parameters, runs, errors, the paper's test error."""
    rows = []
    for r in results:
        depth = int(r.label.removeprefix("resnet").removeprefix("plain"))
        paper = PAPER_TABLE6.get(depth) if r.label.startswith("resnet") else None
        rows.append(
            (
                r.label,
                f"{params[r.label]:,}",
                str(len(r.seeds)),
                percent(r.train_mean, r.train_std, len(r.seeds)),
                percent(r.test_mean, r.test_std, len(r.seeds)),
                "-" if paper is None else f"{paper:.2f}",
            )
        )
    return rows


def markdown(rows: Sequence[Sequence[str]], key: str, cfg, command: str) -> str:
    """The RESULTS.md block: a heading, the table and how it was made."""
    lines = [
        f"### {TITLE}: {key}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|---:|---:|---:|---:|---:|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe_environment(environment())}; measured {date.today().isoformat()}.  ",
        f"Mean ± sample std over seeds. {_data_note(cfg)}",
    ]
    return "\n".join(lines)


def update_block(path: Path, name: str, body: str) -> None:
    """Replace the block marked ``name`` in the Markdown file ``path`` (append it if absent),
    writing the file atomically."""
    begin, end = f"<!-- resnetlab {name} -->", f"<!-- end resnetlab {name} -->"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n"
    write_text(path, text)


def _length(cfg) -> str:
    return f"{cfg.iterations} iterations" if cfg.iterations else f"{cfg.epochs} epochs"


def _data_note(cfg) -> str:
    """What the numbers can be compared with."""
    notes = []
    if cfg.data.name == "cifar10-jpeg":
        notes.append(
            "Data: the JPEG copy of CIFAR-10, whose compression changes pixels: its errors are "
            "not comparable with the paper's benchmark (see the data README)."
        )
    elif cfg.data.name != "cifar10":
        notes.append(f"Data: {cfg.data.name}, not CIFAR-10.")
    if cfg.iterations is not None and cfg.iterations < PAPER_ITERATIONS:
        notes.append(
            f"Length: {_length(cfg)}, a cut-down run (the paper trains {PAPER_ITERATIONS:,} "
            "iterations); the paper's column is for orientation only."
        )
    return " ".join(notes) or "CIFAR-10 with the paper's recipe (§4.2)."
