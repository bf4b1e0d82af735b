"""Where a command may write: never over a file it reads, never into a run's ``checkpoints/``.

A path can name a file in many ways (a symlink, ``..``, a hard link, another spelling), so paths
are compared as files: ``os.path.samefile`` (device and inode) where both exist, the resolved
path otherwise. A run's ``checkpoints/`` folder belongs to the run's checkpoint writer alone:
``resume``, ``eval`` and ``predict`` read what is there, and the run prunes its step files, so a
file written there by anything else is either lost or taken for a checkpoint.

``resnetlab.atomic`` checks every file it writes with ``check_output``; the commands call it (and
``check_output_dir``) with their inputs before any work, so that a refused path costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from resnetlab.errors import ConfigError

CHECKPOINTS = "checkpoints"  # a run folder's checkpoint folder (train.run.Run.checkpoints)
# Files a run folder holds from its first moment (the lock, the resolved config, the records):
# a ``checkpoints/`` beside one of them is a run's.
RUN_MARKERS = (".lock", "config.yaml", "metrics.jsonl")
CHECKPOINT_NAMES = ("last.pt", "best.pt")  # and step-XXXXXXXX.pt (train.checkpoint)


def check_output(
    path: str | Path,
    inputs: Iterable[str | Path | None] = (),
    *,
    folders: Iterable[str | Path | None] = (),
    option: str = "",
) -> Path:
    """Refuse to write the file ``path`` over one of ``inputs``, into one of ``folders`` or
    into a run's ``checkpoints/``.

    Args:
        path: the file about to be written.
        inputs: the files the command reads (``None`` items are skipped).
        folders: the folders the command reads every file of (a dataset's ``--data-dir``): a
            file written there would join the data (``None`` items are skipped).
        option: the option that named ``path`` (``"--out"``), for the message.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ConfigError: naming the path and what it would have overwritten.
    """
    path, folders = Path(path), tuple(folders)
    named = f"{option} {path}" if option else str(path)
    for source in inputs:
        if source is not None and same_file(path, source):
            raise ConfigError(
                f"{named}: is the same file as {source}, which this command reads; "
                "nothing was written: give another output path"
            )
    if path.is_dir():
        raise ConfigError(f"{named}: is a folder; give a file name")
    _refuse_under_file(path.parent, named)
    target = Path(os.path.realpath(path))  # through a symlink named `path`, if it is one
    for folder in (target.parent, Path(os.path.realpath(path.parent))):
        _refuse_checkpoints(folder, named)
        _refuse_data(folder, folders, named)
    return path


def check_output_dir(
    folder: str | Path, *, folders: Iterable[str | Path | None] = (), option: str = ""
) -> Path:
    """Refuse an output folder that is a file, is (or lies in) a run's ``checkpoints/``, or is
    (or lies in) one of ``folders`` (as in ``check_output``).

    Returns:
        ``folder`` as a ``Path``.

    Raises:
        ConfigError: naming the folder and the problem.
    """
    folder = Path(folder)
    named = f"{option} {folder}" if option else str(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{named}: is a file, not a folder")
    _refuse_under_file(folder, named)
    real = Path(os.path.realpath(folder))
    _refuse_checkpoints(real, named)
    _refuse_data(real, folders, named)
    return folder


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file (one inode where both exist, else one real path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be reached)
        return os.path.realpath(a) == os.path.realpath(b)


def run_checkpoints(folder: str | Path) -> Path | None:
    """The run ``checkpoints/`` folder that ``folder`` (a resolved path) is or lies in, or None."""
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.name == CHECKPOINTS and _is_run_checkpoints(candidate):
            return candidate
    return None


def _is_run_checkpoints(folder: Path) -> bool:
    """A ``checkpoints/`` folder beside a run's files, or holding a run's checkpoint files."""
    if any((folder.parent / name).exists() for name in RUN_MARKERS):
        return True
    if any((folder / name).exists() for name in CHECKPOINT_NAMES):
        return True
    return folder.is_dir() and any(folder.glob("step-*.pt"))


def _refuse_under_file(folder: Path, named: str) -> None:
    """Refuse a folder that cannot be made: the nearest part of it that exists is a file."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"{named}: cannot write: {part} is a file, not a folder")
            return


def _refuse_checkpoints(folder: Path, named: str) -> None:
    found = run_checkpoints(folder)
    if found is not None:
        raise ConfigError(
            f"{named}: lies in {found}, a run's checkpoint folder, which only the run writes "
            "(its checkpoints would be overwritten or pruned); give another output path"
        )


def _refuse_data(folder: Path, data_folders: Iterable[str | Path | None], named: str) -> None:
    for data in data_folders:
        if data is None or not Path(data).is_dir():
            continue
        real = Path(os.path.realpath(data))
        if folder == real or real in folder.parents:
            raise ConfigError(
                f"{named}: lies in the dataset folder {data}, which this command reads; "
                "what it writes there would join the data: give another output path"
            )
