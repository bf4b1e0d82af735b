"""Fuzzing the dataset readers: CIFAR pickles (batches and meta), SIGNS HDF5 files and dataset
archives (.tar.gz and plain .tar).

Mutated files (edits focused on headers and structure) and random bytes give a result or a
``DataError``; nothing else, no hang, bounded memory; archive extraction never writes outside
its target folder, whatever the bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_fixtures import cifar_batch, py2_pickle, write_cifar10
from reliability_support import (
    FUZZ_MUTATED,
    FUZZ_RANDOM,
    fuzz_file,
    mutations,
    random_bytes,
)
from resnetlab.data.archive import safe_extract
from resnetlab.data.cifar import SPECS, read_batches, read_class_names
from resnetlab.data.signs import read_signs

CIFAR = SPECS["cifar10"]


def _signs_bytes(n: int = 4, side: int = 8) -> bytes:
    """A SIGNS-format HDF5 file (the official keys, smaller images) as bytes."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("test_set_x", data=rng.integers(0, 256, (n, side, side, 3), np.uint8))
        f.create_dataset("test_set_y", data=rng.integers(0, 6, n))
        f.create_dataset("list_classes", data=np.arange(6))
    return buf.getvalue()


def _tar_bytes(compressed: bool) -> bytes:
    """A dataset archive: one top folder with two small batch files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compressed else "w") as tar:
        for name, data in (("data_batch_1", b"a" * 700), ("batches.meta", b"b" * 300)):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read_batch(path: Path) -> None:
    images, labels = read_batches(CIFAR, path.parent, (path.name,), 10, verify=False)
    assert images.shape[1:] == (3, 32, 32) and len(images) == len(labels)


def _read_meta(path: Path) -> None:
    assert read_class_names(CIFAR, path.parent, verify=False)


def _read_signs(path: Path) -> None:
    images, labels, classes = read_signs(path, "test")
    assert images.shape[1] == 3 and len(images) == len(labels) and classes


def _extractor(dest: Path):
    dest.mkdir()

    def extract(path: Path) -> None:
        before = sorted(p.name for p in dest.parent.iterdir())
        try:
            for top in safe_extract(path, dest):
                assert top.parent == dest
        finally:
            # Nothing appears beside the target folder, whatever happened inside it.
            assert sorted(p.name for p in dest.parent.iterdir()) == before
            assert all(p.resolve().is_relative_to(dest.resolve()) for p in dest.rglob("*"))

    return extract


# reader -> (valid bytes, file name, (start, end) ranges holding the structure)
def _files() -> dict:
    batch = py2_pickle(cifar_batch(4, seed=1))
    meta = py2_pickle({b"label_names": [f"class{i}".encode() for i in range(10)]})
    signs = _signs_bytes()
    tar, tgz = _tar_bytes(False), _tar_bytes(True)
    return {
        "cifar-batch": (batch, "test_batch", [(0, 200), (len(batch) - 700, len(batch))]),
        "cifar-meta": (meta, "batches.meta", [(0, len(meta))]),
        "signs-h5": (signs, "test_signs.h5", [(0, 2048), (len(signs) - 2048, len(signs))]),
        "archive-tar": (tar, "data.tar", [(0, 512), (1024 + 512, 2048 + 512)]),
        "archive-tar-gz": (tgz, "data.tar.gz", [(0, 32), (len(tgz) - 16, len(tgz))]),
    }


FILES = _files()
READERS = {
    "cifar-batch": lambda folder: _read_batch,
    "cifar-meta": lambda folder: _read_meta,
    "signs-h5": lambda folder: _read_signs,
    "archive-tar": lambda folder: _extractor(folder / "dest"),
    "archive-tar-gz": lambda folder: _extractor(folder / "dest"),
}


def test_the_valid_files_read(tmp_path):
    write_cifar10(tmp_path)  # the data package's own fixture agrees with ours
    for name, (valid, filename, _) in FILES.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / filename).write_bytes(valid)
        READERS[name](folder)(folder / filename)
    assert (tmp_path / "archive-tar" / "dest" / "cifar-10-batches-py" / "batches.meta").is_file()


@pytest.mark.parametrize("name", sorted(FILES))
def test_mutated_files_give_clean_errors(tmp_path, name):
    valid, filename, focus = FILES[name]
    folder = tmp_path / "box"
    folder.mkdir()
    path, read = folder / filename, READERS[name](folder)
    fuzz_file(read, path, mutations(valid, focus), FUZZ_MUTATED)


@pytest.mark.parametrize("name", sorted(FILES))
def test_random_bytes_give_clean_errors(tmp_path, name):
    valid, filename, _ = FILES[name]
    folder = tmp_path / "box"
    folder.mkdir()
    path, read = folder / filename, READERS[name](folder)
    signature = valid[:8]  # past the magic number, so the parser gets to the random part

    fuzz_file(read, path, random_bytes(2048).map(lambda b: signature + b), FUZZ_RANDOM)
