"""Finding and decoding image files: class subfolders, JPEG/PNG only, bad files named.

Shared by ``FolderDataset`` (decoded in DataLoader workers) and the decoded-once JPEG copy of
CIFAR-10 (``jpeg_cache``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

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

    Files that are not JPEG or PNG (by suffix) are skipped with a warning, or are fatal with
    ``strict``; hidden files are ignored. A missing folder, a folder with no class subfolders
    and an empty class subfolder raise ``DataError`` naming the path.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class subfolders found (expected <class>/<image>.jpg)")
    scan = FolderScan(root, tuple(p.name for p in class_dirs), [])
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        for other in (p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES):
            report_bad(scan.skipped, f"{other}: not a JPEG or PNG file", strict=strict)
        if not images:
            raise DataError(f"{class_dir}: class folder has no JPEG or PNG files")
        scan.samples.extend((str(p), label) for p in images)
    warn_skipped(scan.skipped)
    return scan


def decode_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a JPEG or PNG file to RGB, refusing oversized or undecodable files.

    Raises:
        DataError: naming the file and the problem.
    """
    # Pillow warns above 89 M pixels while opening; our own, lower limit refuses such images.
    quiet = warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning)
    try:
        with quiet, Image.open(path, formats=["JPEG", "PNG"]) as img:
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
    """One warning per skipped file (the first few by name), then a count of the rest."""
    for problem in problems[:WARN_LIMIT]:
        warnings.warn(f"skipped {problem}", stacklevel=3)
    if len(problems) > WARN_LIMIT:
        warnings.warn(f"skipped {len(problems) - WARN_LIMIT} more bad files", stacklevel=3)
