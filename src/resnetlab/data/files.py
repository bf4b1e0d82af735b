"""File helpers: atomic writes, checksums, fingerprints and the cache folder."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from resnetlab.errors import DataError


def cache_dir() -> Path:
    """Where derived data (statistics, decoded images) is cached.

    ``$RESNETLAB_CACHE`` when set, else ``~/.cache/resnetlab``; created on first use.
    """
    path = Path(os.environ.get("RESNETLAB_CACHE") or Path.home() / ".cache" / "resnetlab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` so that readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, and the
    temporary file then replaces ``path`` in one ``os.replace``.

    Args:
        path: the file to write.
        write: called with the open temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex md5 of a file's bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(paths: Iterable[str | Path]) -> str:
    """A short hash of files' absolute paths, sizes and modification times.

    It changes whenever a file is added, removed, replaced or touched, which is what a cache of
    data derived from those files needs to notice.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise DataError(f"{p}: file not found") from None
        digest.update(f"{Path(p).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
