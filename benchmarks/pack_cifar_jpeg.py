"""Pack the CIFAR-10 JPEG copy into one zip that travels to a GPU machine, and unpack it there.

    python benchmarks/pack_cifar_jpeg.py    # ../shared/data/cifar10-jpeg -> .carry/cifar10-jpeg.zip
    python benchmarks/pack_cifar_jpeg.py --src DIR --out FILE

A GPU machine gets the repository and the git-ignored paths a call names (``.carry``), 64 MiB in
all. The zip holds ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` in sorted order with a
fixed timestamp, so one folder always packs to the same bytes; each member is deflated (the
JPEG headers compress: about 49 MiB for the 60,000 files, against 59 MiB stored). ``unpack``
restores the folder and refuses members outside that layout (``..``, absolute paths, links,
other suffixes), naming the first one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import stat
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from resnetlab.atomic import atomic_write
from resnetlab.errors import DataError, UserError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "cifar10-jpeg"
DEFAULT_OUT = REPO / ".carry" / "cifar10-jpeg.zip"
LIMIT = 60 * 2**20  # below the 64 MiB a call carries, leaving room for the repository itself
SPLITS = ("train", "test")
SUFFIXES = (".jpg", ".jpeg", ".png")
STAMP = (2020, 1, 1, 0, 0, 0)  # every member's time: the bytes depend on the images alone
MAX_MEMBER = 1 << 20  # bytes; a 32x32 JPEG is about 1 kB, so a larger member is not one


def members(src: Path) -> list[tuple[Path, str]]:
    """(file, name in the zip) of every image of ``src/{train,test}/<class>/``, sorted.

    Raises:
        DataError: ``src`` lacks a split folder or holds no images.
    """
    found = []
    for split in SPLITS:
        folder = src / split
        if not folder.is_dir():
            raise DataError(f"{folder}: not found (the copy has train/<class>/ and test/<class>/)")
        for path in sorted(folder.glob("*/*")):
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                found.append((path, path.relative_to(src).as_posix()))
    if not found:
        raise DataError(f"{src}: no images under train/<class>/ or test/<class>/")
    return found


def pack(src: Path, out: Path, limit: int = LIMIT) -> dict:
    """Write ``out``, a zip of the image folder ``src``; nothing is written over ``limit`` bytes.

    Returns:
        ``{"files": count, "bytes": size of the zip, "sha256": its digest}``.

    Raises:
        DataError: a bad ``src``, or a zip larger than ``limit``.
    """
    files = members(src)

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for path, name in files:
                info = zipfile.ZipInfo(name, STAMP)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain file, rw-r--r--
                z.writestr(info, path.read_bytes())
        if f.tell() > limit:  # raised inside atomic_write: the temporary file is removed
            raise DataError(
                f"{out}: {f.tell() / 2**20:.1f} MiB would exceed the {limit / 2**20:.0f} MiB "
                "that can travel to the GPU machine; nothing was written"
            )

    atomic_write(out, write)
    return {"files": len(files), "bytes": out.stat().st_size, "sha256": sha256(out)}


def unpack(archive: Path, dest: Path, workers: int | None = None) -> dict:
    """Extract ``archive`` (made by ``pack``) into ``dest``, checking every member first.

    Args:
        archive: the zip.
        dest: the folder to fill (created).
        workers: threads writing files (zlib and file writes release the GIL); default up to 8.

    Returns:
        ``{"files": count, "bytes": size of the zip, "sha256": its digest, "seconds": time}``.

    Raises:
        DataError: a missing or corrupt zip, or a member outside ``{train,test}/<class>/<image>``.
    """
    start = time.perf_counter()
    try:
        with zipfile.ZipFile(archive) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
        for info in infos:
            _check_member(archive, info)
        workers = workers or min(8, os.cpu_count() or 1)
        chunks = [infos[i::workers] for i in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda chunk: _extract(archive, chunk, dest), chunks))
    except FileNotFoundError:
        raise DataError(f"{archive}: not found (benchmarks/pack_cifar_jpeg.py makes it)") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise DataError(f"{archive}: corrupt zip ({err})") from None
    if not infos:
        raise DataError(f"{archive}: holds no images")
    return {
        "files": len(infos),
        "bytes": archive.stat().st_size,
        "sha256": sha256(archive),
        "seconds": time.perf_counter() - start,
    }


def _extract(archive: Path, infos: list[zipfile.ZipInfo], dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:  # one handle per thread
        for info in infos:
            target = dest.joinpath(*PurePosixPath(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))  # z.read checks the member's CRC


def _check_member(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    mode = info.external_attr >> 16
    bad = (
        "\\" in name
        or name.startswith("/")
        or len(parts) != 3
        or parts[0] not in SPLITS
        or any(p in ("", ".", "..") for p in parts)
        or PurePosixPath(name).suffix.lower() not in SUFFIXES
        or stat.S_IFMT(mode) not in (0, stat.S_IFREG)  # 0: no type recorded (a plain file)
        or info.file_size > MAX_MEMBER
    )
    if bad:
        raise DataError(
            f"{archive}: member {name!r} is not a plain {{train,test}}/<class>/<image> file; "
            "nothing past it is trusted"
        )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="the image folder to pack")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the zip to write")
    args = p.parse_args(argv)
    if args.out.resolve().is_relative_to(args.src.resolve()):
        print(f"pack_cifar_jpeg: error: --out {args.out} is inside --src", file=sys.stderr)
        return 2
    try:
        r = pack(args.src, args.out)
    except UserError as err:
        print(f"pack_cifar_jpeg: error: {err}", file=sys.stderr)
        return 2
    where = os.path.relpath(args.out)
    print(f"wrote {where}: {r['files']} files, {r['bytes'] / 2**20:.1f} MiB, sha256 {r['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
