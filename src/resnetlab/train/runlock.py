"""One run per output folder: an advisory lock on ``RUN_DIR/.lock`` held while a run writes.

The lock is an ``flock`` on an open file, so the kernel drops it the moment its process ends, by
any means (SIGKILL and power loss included): a killed run never leaves a stale lock behind, and
there is no stale-lock guessing from PIDs or ages. The file itself stays; it only records which
process holds the folder, for the message a second run prints.

On a system without ``fcntl`` (Windows) the lock is a no-op; on network file systems ``flock``
may not reach other machines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from resnetlab.atomic import TEMP_MARK
from resnetlab.errors import ConfigError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(out: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``out``'s lock for the body; refuse if another live process holds it.

    On entry, temporary files left by an earlier writer that was killed mid-write are removed
    (holding the lock proves that no live writer owns them).

    Args:
        out: the run folder (created if missing).
        enabled: take the lock at all (rank 0 of a distributed run does; the others share it).

    Raises:
        ConfigError: another process is writing to ``out``.
    """
    if not enabled:
        yield
        return
    try:
        import fcntl
    except ImportError:  # no flock here: one run per folder is up to the user
        yield
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"{out} is in use by another run (process {holder}); wait for it to end, "
                f"or give another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_temp_files(out)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_temp_files(out: Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``out`` and ``out/checkpoints``.

    Only safe while holding ``out``'s lock. Returns the files removed.
    """
    removed = []
    for folder in (out, out / "checkpoints"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") and TEMP_MARK in path.name and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
