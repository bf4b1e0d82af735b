"""A run that never took a step leaves no trace in its output folder.

``fit`` notes what the folder held before the run (``FolderSnapshot.take``). When the run fails
before its first optimizer step (a bad ``--weights`` file, a dataset that fails to load, a value
found bad late, an interrupt), ``undo`` removes what the run created, and only that: the folder
and the folders above it if the run made them, else the entries that were not there before.
Whatever the folder held before, a user's own files included, stays as it was.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from resnetlab.train.runlock import LOCK_NAME

MAX_LOCK_BYTES = 64  # a lock file holds a process id and a line break


@dataclass(frozen=True)
class FolderSnapshot:
    """What an output folder held before a run.

    Attributes:
        folder: the run folder.
        made: the folders that did not exist yet, from ``folder`` upwards (the run makes them).
        before: the names in ``folder`` before the run (empty when it did not exist).
        lock: what a lock file already there held (the process id of a run killed earlier),
            which taking the lock overwrites; None when there was none.
    """

    folder: Path
    made: tuple[Path, ...]
    before: frozenset[str]
    lock: bytes | None = None

    @classmethod
    def take(cls, folder: str | Path) -> FolderSnapshot:
        """Note what ``folder`` holds now."""
        folder = Path(folder)
        made = []
        for path in (folder, *folder.parents):
            if os.path.lexists(path):
                break
            made.append(path)
        before = frozenset(os.listdir(folder)) if not made and folder.is_dir() else frozenset()
        lock = folder / LOCK_NAME
        held = (
            lock.read_bytes()[:MAX_LOCK_BYTES] if LOCK_NAME in before and lock.is_file() else None
        )
        return cls(folder, tuple(made), before, held)

    def undo(self) -> list[Path]:
        """Remove what appeared in the folder since the snapshot (the lock file last, so the
        folder stays claimed until it is clean), put back what a lock file already there held,
        then remove the folders the run made, while empty.

        Only call it while holding the folder's lock. Returns the paths removed.
        """
        if not self.folder.is_dir():
            return []
        new = sorted(set(os.listdir(self.folder)) - self.before, key=lambda n: n == LOCK_NAME)
        removed = []
        for name in new:
            path = self.folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        if self.lock is not None:  # in place: the open lock is on this very file
            with open(self.folder / LOCK_NAME, "r+b") as f:
                f.truncate(0)
                f.write(self.lock)
        return removed + self.remove_made()

    def remove_made(self) -> list[Path]:
        """Remove the folders the run made, innermost first, while empty (never one holding a
        file someone else put there since). Returns the paths removed."""
        removed = []
        for path in self.made:
            try:
                path.rmdir()
            except OSError:
                break
            removed.append(path)
        return removed
