"""Finding and decoding image files: class subfolders, JPEG/PNG only, bad files named.

Shared by ``FolderDataset`` (decoded in DataLoader workers), the decoded-once JPEG copy of
CIFAR-10 (``jpeg_cache``) and ``resnetlab predict`` (``evaluation.preprocess``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from resnetlab.data.files import file_problem, open_regular
from resnetlab.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Refuse an image whose header declares more pixels than this before decoding it, so that a
# small crafted file cannot make a worker allocate gigabytes ("decompression bomb").
MAX_PIXELS = 1 << 26
# Refuse images longer than this many times their width (or the reverse): resizing the shorter
# side of a 1x65000 strip (a 340-byte PNG) to 256 would allocate 4 G pixels.
MAX_ASPECT = 100
WARN_LIMIT = 10  # bad files named one by one in warnings; the rest are counted


@dataclass
class FolderScan:
    """What a folder of class subfolders holds.

    Attributes:
        root: the folder scanned.
        classes: subfolder names, sorted; the index is the label.
        samples: (path, label) of every JPEG/PNG file, sorted by class then name.
        skipped: "path: problem" for every file left out.
    """

    root: Path
    classes: tuple[str, ...]
    samples: list[tuple[str, int]]
    skipped: list[str] = field(default_factory=list)


def scan_folder(root: str | Path, *, strict: bool = False) -> FolderScan:
    """List the images of a folder of class subfolders.

    An image is a regular file (or a link to one) whose suffix is ``.jpg``, ``.jpeg`` or ``.png``.
    Anything else in a class folder (another suffix, a sub-folder, a FIFO or device, a broken
    or looping link) is skipped with a one-line warning naming it, or is fatal with ``strict``;
    hidden files are ignored. A missing folder, a folder with no class subfolders and a class
    subfolder without images raise ``DataError`` naming the path.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    entries = sorted(
        (e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name
    )
    scan = FolderScan(root, tuple(e.name for e in entries if _is(e, "dir")), [])
    for e in entries:  # a link that was meant as a class folder but leads nowhere
        problem = file_problem(e.path, "class folder") if e.is_symlink() else None
        if problem and not _is(e, "dir"):
            report_bad(scan.skipped, problem, strict=strict)
    if not scan.classes:
        raise DataError(f"{root}: no class subfolders found (expected <class>/<image>.jpg)")
    for label, name in enumerate(scan.classes):
        images = _class_images(root / name, scan.skipped, strict)
        if not images:
            raise DataError(f"{root / name}: class folder has no JPEG or PNG files")
        scan.samples.extend((path, label) for path in images)
    warn_skipped(scan.skipped)
    return scan


def _class_images(folder: Path, skipped: list[str], strict: bool) -> list[str]:
    """The image files of one class folder, sorted by name; the rest goes to ``skipped``."""
    images = []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        if e.name.startswith("."):
            continue
        # DirEntry.is_file costs no system call for a plain file (the listing holds its type).
        problem = None if _is(e, "file") else file_problem(e.path, "image file")
        if problem is None and Path(e.name).suffix.lower() not in IMAGE_SUFFIXES:
            problem = f"{e.path}: not a JPEG or PNG file"
        if problem:
            report_bad(skipped, problem, strict=strict)
        else:
            images.append(e.path)
    return images


def _is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_dir()`` / ``entry.is_file()``, following links; False where that fails (a link
    loop raises ELOOP), for ``file_problem`` to name."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError:
        return False


def decode_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a JPEG or PNG file to RGB, refusing oversized or undecodable files.

    Raises:
        DataError: naming the file and the problem: missing, not a regular file (a FIFO or a
            device is never read), not an image, damaged, or declaring more than ``max_pixels``
            pixels or an aspect ratio beyond ``MAX_ASPECT`` (checked from the header, before
            any pixel is decoded).
    """
    # Pillow warns above 89 M pixels while opening; our own, lower limit refuses such images.
    quiet = warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning)
    try:
        with (
            open_regular(path, "image file") as f,
            quiet,
            Image.open(f, formats=["JPEG", "PNG"]) as img,
        ):
            w, h = img.size  # from the header; nothing is decoded yet
            if w * h > max_pixels:
                raise DataError(
                    f"{path}: image of {w}x{h} pixels exceeds the limit of {max_pixels}"
                )
            if max(w, h) > MAX_ASPECT * min(w, h):
                raise DataError(
                    f"{path}: image of {w}x{h} pixels has an aspect ratio beyond {MAX_ASPECT}:1"
                )
            img.load()
            return img.convert("RGB")
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from err


def decode_array(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The RGB pixels of a JPEG/PNG file as (H, W, 3) uint8 (see ``decode_image``)."""
    return np.asarray(decode_image(path, max_pixels))


def report_bad(skipped: list[str], problem: str, *, strict: bool) -> None:
    """Raise ``problem`` as a ``DataError`` with ``strict``; else add it to ``skipped``."""
    if strict:
        raise DataError(problem)
    skipped.append(problem)


def warn_skipped(problems: list[str]) -> None:
    """One warning per skipped file (the first few by name), then a count of the rest.

    Each problem is warned about once per process: the train and the test split of one folder
    are scanned apart, and Python's own once-per-place rule forgets what it showed whenever a
    warning filter changes (``decode_image`` sets one).
    """
    new = [p for p in problems if p not in _WARNED]
    _WARNED.update(new)
    for problem in new[:WARN_LIMIT]:
        warnings.warn(f"skipped {problem}", stacklevel=3)
    if len(new) > WARN_LIMIT:
        warnings.warn(f"skipped {len(new) - WARN_LIMIT} more bad files", stacklevel=3)


_WARNED: set[str] = set()
