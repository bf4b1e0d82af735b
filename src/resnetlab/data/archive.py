"""Safe, atomic extraction of dataset archives (.tar.gz)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from resnetlab.data.files import open_regular
from resnetlab.errors import DataError


def check_member(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` must not be extracted, or ``None`` when it is a plain file or folder.

    Refused: absolute paths, ``..`` components, links (they could point outside the target)
    and device, FIFO or other special files.
    """
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        return "absolute path"
    if ".." in name.parts:
        return "path goes outside the target folder"
    if member.issym() or member.islnk():
        return "links are not allowed"
    if not (member.isfile() or member.isdir()):
        return "special files are not allowed"
    return None


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract a .tar.gz into ``dest``, all or nothing.

    Every member is checked first (``check_member``); the files are written into a temporary
    folder beside ``dest`` and each top-level entry then replaces its namesake in ``dest`` with
    one ``os.replace``, so a failure leaves ``dest`` as it was.

    Args:
        archive: the .tar.gz file.
        dest: the folder to extract into (created if missing).

    Returns:
        The top-level paths created in ``dest``.

    Raises:
        DataError: naming the archive, when it is truncated, corrupt or holds an unsafe member.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=dest))
    try:
        tops = _extract_to(archive, staging)
        for top in tops:
            _replace(staging / top, dest / top)
        return [dest / top for top in tops]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_to(archive: Path, staging: Path) -> list[str]:
    tops: list[str] = []
    try:
        with open_regular(archive) as f, tarfile.open(fileobj=f, mode="r:*") as tar:
            for member in tar:
                problem = check_member(member)
                if problem:
                    raise DataError(f"{archive}: refused member {member.name!r} ({problem})")
                parts = PurePosixPath(member.name).parts
                if not parts:  # "." or "./": the archive's root, i.e. the target folder itself
                    continue
                target, top = staging / member.name, parts[0]
                if top not in tops:
                    tops.append(top)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                    out.flush()
                    os.fsync(out.fileno())
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{archive}: truncated or corrupt archive ({err})") from err
    if not tops:
        raise DataError(f"{archive}: the archive is empty")
    return tops


def _replace(new: Path, old: Path) -> None:
    """Put ``new`` where ``old`` is; a folder in the way is moved aside first, then deleted."""
    if old.is_dir() and not old.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=f".{old.name}.old.", dir=old.parent))
        os.replace(old, aside / old.name)
        os.replace(new, old)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(new, old)
