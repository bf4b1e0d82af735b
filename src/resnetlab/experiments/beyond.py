"""The lesson's section 5: shattered gradients, lesions and loss landscapes, where they ran.

These analyses take minutes to hours (trained nets, grids of evaluations), more than ``make
demo`` may spend, so the lesson does not run them: it reads what their experiments left. Each
folder given is searched for a ``results.json``, and that file for records of the analysis
library, the ``to_dict()`` output of ``ShatteredGradients``, ``LesionStudy`` and ``Landscape``,
wherever they sit in it (a top-level list, or a list under any key). A record is known by its
fields, so the reader does not depend on how an experiment arranges its file. The figures are
drawn again from the records with the library's own figure functions; the sentences come from
``claims_beyond``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnetlab.analysis import report
from resnetlab.analysis.landscape import Landscape
from resnetlab.analysis.lesion import LesionStudy
from resnetlab.analysis.plots_landscape import plot_landscape_contours, plot_landscape_curves
from resnetlab.analysis.plots_lesion import plot_single_deletions
from resnetlab.analysis.plots_shattered import plot_lag1
from resnetlab.analysis.records import read_json
from resnetlab.analysis.shattered import ShatteredGradients
from resnetlab.errors import ConfigError, DataError
from resnetlab.experiments import claims_beyond
from resnetlab.experiments.claims import Claim

# The fields that tell a record of each analysis apart (its to_dict() has them all).
KINDS = {
    "shattered": (ShatteredGradients, ("label", "lag1", "autocorrelation", "along_line")),
    "lesion": (LesionStudy, ("label", "blocks", "single_error", "baseline_error")),
    "landscape": (Landscape, ("label", "alphas", "loss", "centre_loss")),
}
DEFAULT_FOLDERS = ("runs/shattered", "runs/lesion", "runs/landscape")
TITLES = {
    "shattered": "Shattered gradients (Balduzzi et al. 2017, arXiv:1702.08591)",
    "lesion": "Lesions: residual networks as ensembles (Veit et al. 2016, arXiv:1605.06431)",
    "landscape": "Loss landscapes (Li et al. 2018, arXiv:1712.09913)",
}


@dataclass(frozen=True)
class Found:
    """The records of one analysis found in one folder's ``results.json``."""

    kind: str
    path: Path
    records: list


def find_records(value: Any) -> dict[str, list[dict]]:
    """Every record of a known kind anywhere in a JSON value, by kind, in file order."""
    found: dict[str, list[dict]] = {}

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            kind = next((k for k, (_, keys) in KINDS.items() if all(f in v for f in keys)), None)
            if kind is not None:
                found.setdefault(kind, []).append(v)
                return
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    return found


def from_dict(kind: str, record: dict, path: Path) -> Any:
    """The library object of a record (arrays as numpy arrays, ``None`` as NaN).

    Raises:
        DataError: a field is missing or of the wrong type, naming the file and the record.
    """
    cls = KINDS[kind][0]
    values = {}
    try:
        for f in dataclasses.fields(cls):
            if f.name not in record:
                if f.default is not dataclasses.MISSING or f.init is False:
                    continue
                if f.default_factory is not dataclasses.MISSING:
                    continue
                raise KeyError(f.name)
            values[f.name] = _field(str(f.type), record[f.name])
        return cls(**values)
    except (KeyError, TypeError, ValueError) as err:
        label = record.get("label", "?")
        raise DataError(f"{path}: the {kind} record {label!r} has a bad field ({err})") from None


def read_folders(folders: Iterable[str | Path]) -> tuple[list[Found], list[Path]]:
    """The records in each folder's ``results.json``; the folders without one come second."""
    found, missing = [], []
    for folder in map(Path, folders):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--beyond {folder}: not a folder (give a results.json's folder)")
        path = folder / "results.json"
        if not path.is_file():
            missing.append(folder)
            continue
        records = find_records(read_json(path))
        if not records:
            missing.append(folder)
        for kind, items in records.items():
            found.append(Found(kind, path, [from_dict(kind, r, path) for r in items]))
    return found, missing


def section(found: Sequence[Found], missing: Sequence[Path], out: Path) -> tuple[str, list]:
    """The lesson's section 5 and its claims: one part per analysis that ran, and a note on
    the ones that did not."""
    parts, made = [], []
    for kind in KINDS:
        items = [f for f in found if f.kind == kind]
        if not items:
            continue
        records = [r for f in items for r in f.records]
        html, kind_claims = PARTS[kind](records, out)
        where = ", ".join(str(f.path) for f in items)
        parts.append(
            f"<h3>{report.esc(TITLES[kind])}</h3>{html}" + report.paragraph(f"Read from {where}.")
        )
        made += kind_claims
    absent = [k for k in KINDS if not any(f.kind == k for f in found)]
    if absent:
        looked = ", ".join(str(m) for m in missing) or "no folder"
        names = ", ".join(absent)
        parts.append(
            report.paragraph(
                f"Not run for this report: {names} (no results.json with their records in "
                f"{looked}). Run `resnetlab experiment NAME` for each, then run the lesson again "
                "with --beyond pointing at their folders; it reads their results.json."
            )
        )
    return "".join(parts), made


def _shattered(records: list[ShatteredGradients], out: Path) -> tuple[str, list[Claim]]:
    nets = [r for r in records if r.depth is not None]
    html = report.figure(plot_lag1(nets, out / "beyond_lag1"), "Lag-1 autocorrelation by depth.")
    made = []
    norm = "bn" if any(r.norm == "bn" for r in nets) else nets[0].norm
    pairs = _twins(nets, norm)
    if pairs:
        depth, plain, residual = pairs[-1]
        made.append(
            claims_beyond.shattered(
                depth=depth,
                plain=plain.label,
                plain_lag1=plain.lag1,
                residual=residual.label,
                residual_lag1=residual.lag1,
            )
        )
    return html + "".join(report.claim(c.text, c.kind) for c in made), made


def _lesion(records: list[LesionStudy], out: Path) -> tuple[str, list[Claim]]:
    html = report.figure(
        plot_single_deletions(records, out / "beyond_lesion"), "Test error, one block deleted."
    )
    rises = {
        r.label: claims_beyond.single_rises(r.single_error, r.baseline_error, r.changes_shape)
        for r in records
    }
    made = []
    plains = [r for r in records if not r.residual]
    for res in (r for r in records if r.residual):
        same, down = rises[res.label]
        if plains:
            twin = plains[0]
            made.append(
                claims_beyond.lesion(
                    plain=twin.label,
                    plain_rise=rises[twin.label][0],
                    residual=res.label,
                    residual_rise=same,
                )
            )
        if not math.isnan(down) and not math.isnan(same):
            made.append(
                claims_beyond.downsampling(model=res.label, shape_rise=down, other_rise=same)
            )
    return html + "".join(report.claim(c.text, c.kind) for c in made), made


def _landscape(records: list[Landscape], out: Path) -> tuple[str, list[Claim]]:
    html = ""
    if any(r.betas is None for r in records):
        files = plot_landscape_curves(records, out / "beyond_landscape_1d")
        html += report.figure(files, "Loss along one random direction.")
    if any(r.betas is not None for r in records):
        files = plot_landscape_contours(records, out / "beyond_landscape_2d")
        html += report.figure(files, "Loss around the trained weights.")
    made = []
    plains = [r for r in records if r.label.startswith("plain")]
    for res in (r for r in records if r.label.startswith("resnet")):
        if plains:
            made.append(
                claims_beyond.landscape(
                    plain=plains[0].label,
                    plain_convex=claims_beyond.convex_share(plains[0].loss),
                    residual=res.label,
                    residual_convex=claims_beyond.convex_share(res.loss),
                )
            )
    return html + "".join(report.claim(c.text, c.kind) for c in made), made


PARTS = {"shattered": _shattered, "lesion": _lesion, "landscape": _landscape}


def _twins(nets: list[ShatteredGradients], norm: str) -> list[tuple[int, Any, Any]]:
    """``(depth, plain, residual)`` for every depth with both nets of ``norm``, shallow first."""
    pairs = []
    for depth in sorted({r.depth for r in nets}):
        of = {r.residual: r for r in nets if r.depth == depth and r.norm == norm}
        if True in of and False in of:
            pairs.append((depth, of[False], of[True]))
    return pairs


def _field(annotation: str, value: Any) -> Any:
    """A JSON value as the dataclass field's type wants it."""
    if "ndarray" in annotation:
        return None if value is None else np.array(_nan(value), dtype=np.float64)
    if annotation.startswith("tuple"):
        return tuple(value)
    if annotation.startswith("dict[int"):
        return {int(k): list(v) for k, v in value.items()}
    if annotation == "float":
        return math.nan if value is None else float(value)
    return value


def _nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return math.nan if value is None else value
