"""File helpers: opening regular files only, checksums, fingerprints and the cache folder."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
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


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """Open ``path`` for reading in binary mode, refusing anything but a regular file.

    A FIFO would block the open (or the first read) until some other process writes to it, and
    a device such as ``/dev/zero`` never ends: both are refused from ``stat`` before they are
    opened, and again from ``fstat`` after a non-blocking open (a file swapped in between).

    Args:
        path: the file (links are followed).
        what: how the message names the file ("image file", "file").

    Raises:
        DataError: naming the path, when it is missing, a link loop, not a regular file or
            unreadable.
    """
    problem = file_problem(path, what)
    if problem:
        raise DataError(problem)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise DataError(_os_problem(path, err, what)) from None
    try:
        problem = _mode_problem(path, os.fstat(fd).st_mode, what)
        if problem:
            raise DataError(problem)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_problem(path: str | Path, what: str = "file") -> str | None:
    """Why ``path`` is not a regular file one can open (from ``stat`` alone), or ``None``.

    The answer is one line naming the path: missing, a broken or looping symbolic link, a
    folder, FIFO, device or socket, or an error of the file system.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return _os_problem(path, err, what)
    return _mode_problem(path, mode, what)


def _os_problem(path: str | Path, err: OSError, what: str) -> str:
    if err.errno == errno.ENOENT:
        return (
            f"{path}: broken symbolic link" if os.path.islink(path) else f"{path}: {what} not found"
        )
    if err.errno == errno.ELOOP:
        return f"{path}: symbolic link loop (the link leads back to itself)"
    return f"{path}: cannot read {what} ({err.strerror or err})"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _mode_problem(path: str | Path, mode: int, what: str) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    article = "an" if what[0] in "aeiou" else "a"
    return f"{path}: not a regular file ({kind}); expected {article} {what}"


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex md5 of a regular file's bytes (see ``open_regular`` for what is refused)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open_regular(path) as f:
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
