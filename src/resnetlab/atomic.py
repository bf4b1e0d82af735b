"""Atomic files: every file resnetlab keeps is written through here.

The bytes go to a temporary file beside the target, are flushed and fsynced, the temporary file
replaces the target in one ``os.replace``, and the folder is fsynced so that the rename survives
a power cut. A reader (a resumed run, a second process) sees the old file or the whole new one,
never half of one; a failed write leaves the old file as it was and no temporary file behind.
No file is written into a run's ``checkpoints/`` folder except by the run's checkpoint writer
(``resnetlab.outputs``).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from resnetlab.outputs import check_output

# Temporary files are named ".<name>.tmp-<pid>-<random>": a run that holds its folder's lock
# removes the ones a killed writer left (``train.runlock``).
TEMP_MARK = ".tmp-"


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], *, run_checkpoint: bool = False
) -> Path:
    """Write ``path`` so that readers see either the old file or the whole new one.

    Args:
        path: the file to write; its folder is created if missing.
        write: called with the open temporary file (binary mode).
        run_checkpoint: the caller is a run writing its own checkpoint (``train.checkpoint``);
            every other write into a run's ``checkpoints/`` is refused.

    Returns:
        The path written.

    Raises:
        ConfigError: ``path`` lies in a run's ``checkpoints/`` and this is not the run's write.
    """
    path = Path(path)
    if not run_checkpoint:
        check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` into ``path``, atomically."""
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) into ``path``, atomically."""
    return write_bytes(path, text.encode("utf-8"))


def atomic_link(src: str | Path, dst: str | Path, *, run_checkpoint: bool = False) -> Path:
    """Make ``dst`` a second name of the finished file ``src`` (a copy where links fail);
    ``run_checkpoint`` as in ``atomic_write``."""
    src, dst = Path(src), Path(dst)
    if not run_checkpoint:
        check_output(dst)

    def link_or_copy(f: BinaryIO) -> None:
        with open(src, "rb") as source:
            shutil.copyfileobj(source, f)

    try:
        tmp = dst.with_name(f".{dst.name}{TEMP_MARK}{os.getpid()}-link")
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
    except OSError:  # a file system without hard links
        return atomic_write(dst, link_or_copy, run_checkpoint=True)  # checked above
    try:
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dst.parent)
    return dst


def fsync_dir(folder: str | Path) -> None:
    """Persist a rename: fsync the folder that holds it (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
