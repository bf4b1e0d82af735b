"""Finding and decoding image files: class subfolders, every format Pillow decodes, bad files named.

Shared by ``FolderDataset`` (decoded in DataLoader workers), the decoded-once JPEG copy of
CIFAR-10 (``jpeg_cache``) and ``resnetlab predict`` (``evaluation.preprocess``): ``decode_image``
is the one function that turns a file into pixels, so the size limits and the EXIF orientation
apply to all of them alike.
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

Image.init()  # register every format plugin, so that the tables below see them all
# Formats Pillow identifies but that would run another program (EPS: Ghostscript), that need a
# handler the application installs (the BUFR, GRIB, HDF5 and WMF stubs), that it cannot decode
# (MPEG: the header only) or that hold an image inside news metadata (IPTC).
EXCLUDED_FORMATS = frozenset({"EPS", "BUFR", "GRIB", "HDF5", "WMF", "MPEG", "IPTC"})
FORMATS = tuple(sorted(set(Image.OPEN) - EXCLUDED_FORMATS))
# File suffixes of those formats (.jpg, .png, .gif, .webp, .tif, .bmp, ...), lower case.
IMAGE_SUFFIXES = tuple(
    sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in FORMATS)
)
# Refuse an image whose header declares more pixels than this before decoding it, so that a
# small crafted file cannot make a worker allocate gigabytes ("decompression bomb").
MAX_PIXELS = 1 << 26
# Refuse images longer than this many times their width (or the reverse): resizing the shorter
# side of a 1x65000 strip (a 340-byte PNG) to 256 would allocate 4 G pixels.
MAX_ASPECT = 100
WARN_LIMIT = 10  # bad files named one by one in warnings; the rest are counted
# Goes up whenever decode_image's pixels change, so that caches of decoded images and of their
# statistics are rebuilt (2: EXIF orientation, 16-bit images scaled instead of clipped).
DECODE_VERSION = 2
# EXIF tag 274 (Orientation, EXIF 2.3 §4.6.4): how the stored pixels must be turned to show the
# scene upright; a phone held upright writes 6 (stored rotated 90 degrees counter-clockwise).
ORIENTATION_TAG = 0x0112
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,  # Pillow's angles are counter-clockwise: 90 degrees clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # modes scaled to 8 bits (65535 -> 255)


@dataclass
class FolderScan:
    """What a folder of class subfolders holds.

    Attributes:
        root: the folder scanned.
        classes: subfolder names, sorted; the index is the label.
        samples: (path, label) of every image file, sorted by class then name.
        skipped: "path: problem" for every file left out.
    """

    root: Path
    classes: tuple[str, ...]
    samples: list[tuple[str, int]]
    skipped: list[str] = field(default_factory=list)


def scan_folder(root: str | Path, *, strict: bool = False) -> FolderScan:
    """List the images of a folder of class subfolders.

    An image is a regular file (or a link to one) whose suffix is one of ``IMAGE_SUFFIXES``.
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
            raise DataError(f"{root / name}: class folder has no image files")
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
            problem = f"{e.path}: not an image file (no image suffix such as .jpg or .png)"
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
    """Decode an image file to RGB, upright, refusing oversized or undecodable files.

    Every format of ``FORMATS`` is read (JPEG, PNG, GIF, WebP, TIFF, BMP, ...); of an animation
    or a multi-page file, the first frame. The EXIF orientation, where the file has one, turns
    the pixels upright. 16-bit images are scaled to 8 bits.

    Raises:
        DataError: naming the file and the problem: missing, not a regular file (a FIFO or a
            device is never read), not an image, damaged, or declaring more than ``max_pixels``
            pixels or an aspect ratio beyond ``MAX_ASPECT`` (checked from the header, before
            any pixel is decoded).
    """
    # Pillow warns above 89 M pixels while opening; our own, lower limit refuses such images.
    quiet = warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning)
    try:
        with open_regular(path, "image file") as f, quiet, Image.open(f, formats=FORMATS) as img:
            w, h = img.size  # from the header; nothing is decoded yet
            if w * h > max_pixels:
                raise DataError(
                    f"{path}: image of {w}x{h} pixels exceeds the limit of {max_pixels}"
                )
            if max(w, h) > MAX_ASPECT * min(w, h):
                raise DataError(
                    f"{path}: image of {w}x{h} pixels has an aspect ratio beyond {MAX_ASPECT}:1"
                )
            img.load()  # the first frame
            turn = UPRIGHT.get(_orientation(img))
            rgb = _to_rgb(img, path)
            return rgb if turn is None else rgb.transpose(turn)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from err


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation of a loaded image, 1 (as stored) when it has none."""
    try:
        value = int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # Pillow raises many kinds on damaged metadata; the pixels are still good
        return 1
    return value if value in UPRIGHT else 1


def _to_rgb(img: Image.Image, path: str | Path) -> Image.Image:
    """8-bit RGB pixels of a loaded image."""
    if img.mode in SIXTEEN_BIT:  # Pillow's own conversion would clip every value above 255
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"{path}: {img.mode} pixels outside 0..65535 have no 8-bit scale")
        img = Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))  # mode L
    elif img.mode == "F":
        raise DataError(f"{path}: 32-bit float pixels have no fixed range; save 8 or 16 bits")
    return img.convert("RGB")


def decode_array(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The RGB pixels of an image file as (H, W, 3) uint8 (see ``decode_image``)."""
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
