"""Downloading over HTTP from a local server on 127.0.0.1: resume, verify, extract, fail cleanly."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data_fixtures import make_tar_gz, write_cifar10
from resnetlab.data import cifar, load_dataset
from resnetlab.data.download import download
from resnetlab.errors import DataError

BLOB = bytes(range(256)) * 400  # 100 KiB, several read chunks


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; may cut the body short."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.honour_range:
            start = int(rng.removeprefix("bytes=").removesuffix("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        stop = len(body) if self.server.cut_at is None else self.server.cut_at
        self.wfile.write(body[start:stop])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.cut_at, httpd.honour_range = {"/blob": BLOB}, [], None, True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_fresh_download_is_verified_and_renamed(server, tmp_path):
    dest = download(f"{server.url}/blob", tmp_path / "blob.bin", md5=_md5(BLOB), quiet=True)
    assert dest.read_bytes() == BLOB and not (tmp_path / "blob.bin.part").exists()
    assert server.requests == [("/blob", None)]


def test_a_partial_file_is_resumed_with_a_range_request(server, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(BLOB[:30000])
    download(f"{server.url}/blob", tmp_path / "blob.bin", md5=_md5(BLOB), quiet=True)
    assert (tmp_path / "blob.bin").read_bytes() == BLOB
    assert server.requests == [("/blob", "bytes=30000-")]


def test_a_server_that_ignores_ranges_restarts_the_file(server, tmp_path):
    server.honour_range = False
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes")
    download(f"{server.url}/blob", tmp_path / "blob.bin", md5=_md5(BLOB), quiet=True)
    assert (tmp_path / "blob.bin").read_bytes() == BLOB


def test_a_cut_connection_keeps_the_part_and_the_next_try_resumes(server, tmp_path):
    server.cut_at = 40000
    with pytest.raises(DataError, match=r"/blob: download failed .*blob\.bin\.part is kept"):
        download(f"{server.url}/blob", tmp_path / "blob.bin", md5=_md5(BLOB), quiet=True)
    assert (tmp_path / "blob.bin.part").read_bytes() == BLOB[:40000]
    assert not (tmp_path / "blob.bin").exists()
    server.cut_at = None
    download(f"{server.url}/blob", tmp_path / "blob.bin", md5=_md5(BLOB), quiet=True)
    assert (tmp_path / "blob.bin").read_bytes() == BLOB
    assert server.requests[-1] == ("/blob", "bytes=40000-")


def test_wrong_md5_deletes_the_download(server, tmp_path):
    with pytest.raises(DataError, match=rf"md5 {_md5(BLOB)}, expected 0+; deleted it"):
        download(f"{server.url}/blob", tmp_path / "blob.bin", md5="0" * 32, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_and_bad_scheme(server, tmp_path):
    with pytest.raises(DataError, match=r"/nothing: download failed \(HTTP Error 404"):
        download(f"{server.url}/nothing", tmp_path / "x", quiet=True)
    with pytest.raises(DataError, match=r"only http:// and https://"):
        download("file:///etc/passwd", tmp_path / "x", quiet=True)


def test_load_dataset_downloads_verifies_and_extracts_cifar(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    folder = write_cifar10(tmp_path / "src")
    archive = make_tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    server.files["/cifar-10-python.tar.gz"] = archive.read_bytes()
    spec = dataclasses.replace(
        cifar.SPECS["cifar10"],
        url=f"{server.url}/cifar-10-python.tar.gz",
        archive_md5=_md5(archive.read_bytes()),
    )
    monkeypatch.setitem(cifar.SPECS, "cifar10", spec)
    root = tmp_path / "data"
    ds = load_dataset("cifar10", "test", root=root, download=True, verify=False)
    assert len(ds) == 4 and (root / "cifar-10-batches-py" / "batches.meta").is_file()
    assert (root / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()


def test_cli_download_then_info(server, tmp_path, monkeypatch, capsys):
    from resnetlab.cli import main

    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    folder = write_cifar10(tmp_path / "src")
    archive = make_tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    server.files["/mirror.tar.gz"] = archive.read_bytes()
    root = tmp_path / "data"
    url = f"{server.url}/mirror.tar.gz"
    assert main(["data", "download", "--data-dir", str(root), "--url", url]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("resnetlab: error: ") and "expected c58f30108f718f92721af3b95e74349a" in err
    )
    assert len(err.strip().splitlines()) == 1
    assert main(["data", "download", "--data-dir", str(root), "--url", url, "--no-verify"]) == 0
    assert f"cifar10: ready in {root / 'cifar-10-batches-py'}" in capsys.readouterr().out
    assert main(["data", "info", "--data", "cifar10", "--data-dir", str(root), "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "classes    10: airplane, automobile" in out and "train      20 images" in out
