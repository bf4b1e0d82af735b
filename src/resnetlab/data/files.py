"""File helpers: checksums, fingerprints and the cache folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from resnetlab.errors import DataError


def cache_dir() -> Path:
    """Where derived data (statistics, decoded images) is cached.

    ``$RESNETLAB_CACHE`` when set, else ``~/.cache/resnetlab``; created on first use.
    """
    path = Path(os.environ.get("RESNETLAB_CACHE") or Path.home() / ".cache" / "resnetlab")
    path.mkdir(parents=True, exist_ok=True)
    return path


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
