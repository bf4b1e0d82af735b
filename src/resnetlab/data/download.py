"""Downloading an archive over HTTP(S): resumable, with a progress bar, verified by md5."""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from resnetlab.data.files import md5_file
from resnetlab.errors import DataError

CHUNK = 1 << 16
TIMEOUT_S = 60


def download(url: str, dest: str | Path, *, md5: str | None = None, quiet: bool = False) -> Path:
    """Fetch ``url`` into ``dest``, resuming a partial ``dest.part`` left by an earlier try.

    The bytes go to ``<dest>.part``; an existing part is continued with an HTTP Range request
    (a server that ignores it sends the whole file, which is then written from the start). Once
    complete the file is checked against ``md5`` and renamed to ``dest``.

    Args:
        url: an http:// or https:// address.
        dest: the file to create.
        md5: the expected hex md5; ``None`` skips the check.
        quiet: no progress bar (it is also off when stderr is not a terminal).

    Returns:
        ``dest``.

    Raises:
        DataError: naming the address or the file, when the download fails (the part is kept
            for the next try) or the checksum does not match (the part is deleted).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _fetch(url, part, quiet=quiet)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DataError(
            f"{url}: download failed ({err}); {part} is kept and the next try resumes it"
        ) from err
    if md5 is not None:
        got = md5_file(part)
        if got != md5:
            part.unlink()
            raise DataError(f"{url}: downloaded file has md5 {got}, expected {md5}; deleted it")
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, quiet: bool) -> None:
    if not url.startswith(("http://", "https://")):
        raise DataError(f"{url}: only http:// and https:// addresses can be downloaded")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code != 416:  # 416: the part already holds the whole file
            raise
        return
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (offset if resumed else 0)) if length else None
        start = offset if resumed else 0
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            desc=part.name[:-5],
            disable=quiet or not sys.stderr.isatty(),
        )
        with bar, open(part, "ab" if resumed else "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise OSError(f"connection closed after {size} of {total} bytes")
