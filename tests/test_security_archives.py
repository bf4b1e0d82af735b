"""Dataset archives with ``../`` paths, absolute paths, links or device nodes are refused, and
extraction never writes outside its target folder: not by ``safe_extract``, not by the CIFAR
loader that extracts an archive it finds, not by ``resnetlab data info``.

Every hostile archive aims at a sentinel folder beside the target; after each attempt the
sentinel is still empty and the target holds nothing from the archive (extraction is all or
nothing).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from reliability_support import hang_guard
from resnetlab.cli import main
from resnetlab.data.archive import safe_extract
from resnetlab.data.cifar import SPECS, load_cifar
from resnetlab.errors import DataError

TOP = SPECS["cifar10"].folder  # cifar-10-batches-py: a plausible first member


def _file(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    return info, None


def hostile_members(outside: Path) -> dict[str, list]:
    """Archive contents, each with one member that would escape or plant a special file."""
    benign = _file(f"{TOP}/data_batch_1", b"ok")
    return {
        "dot-dot": [benign, _file(f"../{outside.name}/evil")],
        "dot-dot-inside": [benign, _file(f"{TOP}/../../{outside.name}/evil")],
        "absolute": [benign, _file(f"{outside}/evil")],
        "symlink-out": [benign, _special(f"{TOP}/link", tarfile.SYMTYPE, str(outside))],
        "symlink-then-write": [
            _special(f"{TOP}/link", tarfile.SYMTYPE, str(outside)),
            _file(f"{TOP}/link/evil"),
        ],
        "hardlink": [benign, _special(f"{TOP}/hard", tarfile.LNKTYPE, str(outside / "x"))],
        "char-device": [benign, _special(f"{TOP}/null", tarfile.CHRTYPE)],
        "block-device": [benign, _special(f"{TOP}/disk", tarfile.BLKTYPE)],
        "fifo": [benign, _special(f"{TOP}/pipe", tarfile.FIFOTYPE)],
    }


HOSTILE = sorted(hostile_members(Path("/x/outside")))
CASES = len(HOSTILE) * 3  # safe_extract, load_cifar, resnetlab data info
REASONS = {
    "dot-dot": "path goes outside",
    "dot-dot-inside": "path goes outside",
    "absolute": "absolute path",
    "symlink-out": "links are not allowed",
    "symlink-then-write": "links are not allowed",
    "hardlink": "links are not allowed",
    "char-device": "special files",
    "block-device": "special files",
    "fifo": "special files",
}


def _write_archive(path: Path, members: list) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def box(tmp_path):
    """(root holding the archive, sentinel folder beside it)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root, outside


def _assert_nothing_escaped(root: Path, outside: Path) -> None:
    assert list(outside.iterdir()) == []
    left = sorted(p.name for p in root.iterdir())
    assert left == [SPECS["cifar10"].archive], left  # no extracted files, no staging folder


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_extract_refuses_hostile_members(box, name):
    root, outside = box
    archive = _write_archive(root / SPECS["cifar10"].archive, hostile_members(outside)[name])
    with hang_guard(), pytest.raises(DataError, match=rf"refused member .*\({REASONS[name]}"):
        safe_extract(archive, root)
    _assert_nothing_escaped(root, outside)


@pytest.mark.parametrize("name", HOSTILE)
def test_the_cifar_loader_refuses_a_hostile_archive(box, name, monkeypatch, tmp_path):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    root, outside = box
    _write_archive(root / SPECS["cifar10"].archive, hostile_members(outside)[name])
    with hang_guard(), pytest.raises(DataError, match=REASONS[name]):
        load_cifar("cifar10", "train", root, verify=False)
    _assert_nothing_escaped(root, outside)


@pytest.mark.parametrize("name", HOSTILE)
def test_data_info_refuses_a_hostile_archive_in_one_line(box, name, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    root, outside = box
    _write_archive(root / SPECS["cifar10"].archive, hostile_members(outside)[name])
    with hang_guard():
        code = main(["data", "info", "--data", "cifar10", "--data-dir", str(root), "--no-verify"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("resnetlab: error: ")
    assert "refused member" in err and REASONS[name] in err
    _assert_nothing_escaped(root, outside)


def test_an_archive_with_a_dot_root_member_extracts(tmp_path):
    """``tar czf x.tgz .`` writes a "./" member first: the target folder itself."""
    root = tmp_path / "root"
    root.mkdir()
    dot = tarfile.TarInfo("./")
    dot.type = tarfile.DIRTYPE
    archive = _write_archive(root / "a.tar.gz", [(dot, None), _file(f"./{TOP}/batches.meta")])
    assert safe_extract(archive, root) == [root / TOP]
    assert (root / TOP / "batches.meta").read_bytes() == b"pwned"
