"""The run's records: ``metrics.jsonl`` (+ a ``metrics.csv`` view), ``grad_norms.jsonl``, the
terminal (a progress bar with ETA on a TTY, plain lines otherwise) and, optionally, TensorBoard.

Only rank 0 of a distributed run writes; the other ranks get a ``RunLog`` with ``enabled=False``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from resnetlab.atomic import write_text
from resnetlab.errors import ConfigError

CSV_COLUMNS = [
    "kind",
    "iteration",
    "epoch",
    "lr",
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "test_loss",
    "test_error",
    "img_per_s",
    "wall_s",
]


class RunLog:
    """Writes the records of one run.

    Args:
        out: the run folder.
        total: the run's length in iterations (for the bar and the ETA).
        start: the iteration the run starts from (> 0 when resumed).
        enabled: write anything at all (rank 0 only).
        tensorboard: also write TensorBoard event files under ``out/tensorboard``.
    """

    def __init__(
        self, out: Path, total: int, start: int, enabled: bool = True, tensorboard: bool = False
    ) -> None:
        self.out, self.total, self.start, self.enabled = out, total, start, enabled
        self.started = time.perf_counter()
        self.bar = None
        self.tb = None
        if not enabled:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True)
        if tensorboard:
            self.tb = _tensorboard_writer(out / "tensorboard")

    def step(self, iteration: int) -> None:
        """One optimizer step done (moves the bar)."""
        if self.bar is not None:
            self.bar.update(iteration - self.bar.n)

    def write(self, record: dict[str, Any]) -> None:
        """Append a train or eval record to ``metrics.jsonl`` and show it."""
        if not self.enabled:
            return
        _append(self.out / "metrics.jsonl", record)
        line = format_record(record, self.total, self._eta(record["iteration"]))
        if self.bar is not None:
            if record["kind"] == "train":  # the bar shows the iteration, the rate and the ETA
                self.bar.set_postfix_str(
                    f"epoch {record['epoch']:.2f} lr {record['lr']:.4g} loss "
                    f"{record['train_loss']:.4f} error {100 * record['train_error']:.2f}%",
                    refresh=False,
                )
            else:
                self.bar.write(line)
        else:
            print(line, flush=True)
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("kind", "iteration", "epoch") and value is not None:
                    self.tb.add_scalar(f"{record['kind']}/{key}", value, record["iteration"])
        if record["kind"] == "eval":
            write_csv(self.out / "metrics.jsonl", self.out / "metrics.csv")

    def grad_norms(self, iteration: int, norms: dict[str, float]) -> None:
        """Append one record to ``grad_norms.jsonl``."""
        if self.enabled:
            _append(self.out / "grad_norms.jsonl", {"iteration": iteration, "norms": norms})

    def message(self, text: str) -> None:
        """A line for the person watching (not a record)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        """Write the CSV view and close the bar and TensorBoard."""
        if not self.enabled:
            return
        if (self.out / "metrics.jsonl").exists():
            write_csv(self.out / "metrics.jsonl", self.out / "metrics.csv")
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()

    def _eta(self, iteration: int) -> float | None:
        done = iteration - self.start
        if done <= 0:
            return None
        return (time.perf_counter() - self.started) / done * (self.total - iteration)


def format_record(record: dict[str, Any], total: int, eta_s: float | None = None) -> str:
    """One line for the terminal or a log file."""
    it = f"iter {record['iteration']}/{total} (epoch {record['epoch']:.2f})"
    if record["kind"] == "train":
        eta = f" eta {_duration(eta_s)}" if eta_s is not None else ""
        return (
            f"[train] {it} lr {record['lr']:.4g} loss {record['train_loss']:.4f} "
            f"error {100 * record['train_error']:.2f}% {record['img_per_s']:.0f} img/s{eta}"
        )
    parts = [
        f"{split} loss {record[f'{split}_loss']:.4f} error {100 * record[f'{split}_error']:.2f}%"
        for split in ("val", "test")
        if f"{split}_loss" in record
    ]
    return f"[eval]  {it} " + " | ".join(parts)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (a killed writer) is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_records(path: Path, iteration: int) -> None:
    """Keep only the records up to ``iteration`` (a resumed run redoes the steps after it)."""
    if not path.exists():
        return
    kept = [r for r in read_records(path) if r["iteration"] <= iteration]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def write_csv(jsonl: Path, csv_path: Path) -> None:
    """Rewrite the CSV view of ``metrics.jsonl`` (one row per record, blank where not measured)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(read_records(jsonl))
    write_text(csv_path, buffer.getvalue())


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "tensorboard=true needs the tensorboard package (pip install tensorboard)"
        ) from None
    return SummaryWriter(str(folder))
