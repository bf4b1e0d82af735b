"""Small dataset files in the real on-disk formats, written by the data tests.

The CIFAR batches are pickled the way the Python 2 originals are: protocol 2, byte strings as
Python 2 ``str`` opcodes, numpy's array reconstruction named ``numpy.core.multiarray``.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` and numpy's reconstructor under its Python 2 name."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def py2_pickle(obj: object) -> bytes:
    """``obj`` pickled as Python 2's cPickle with protocol 2 would."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def cifar_batch(n: int, seed: int, num_classes: int = 10, label_key: bytes = b"labels") -> dict:
    """One batch dict with random images; keys are Python 2 str, as in the official files."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        label_key: [int(v) for v in rng.integers(0, num_classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path, n: int = 4) -> Path:
    """``root/cifar-10-batches-py`` with five train batches and a test batch of ``n`` images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(py2_pickle(cifar_batch(n, seed=i)))
    (folder / "test_batch").write_bytes(py2_pickle(cifar_batch(n, seed=0)))
    meta = {b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder


def write_cifar100(root: Path, n: int = 6) -> Path:
    """``root/cifar-100-python`` with ``train`` and ``test`` of ``n`` images each."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, seed in (("train", 1), ("test", 2)):
        batch = cifar_batch(n, seed, num_classes=100, label_key=b"fine_labels")
        batch[b"coarse_labels"] = [v // 5 for v in batch[b"fine_labels"]]
        (folder / name).write_bytes(py2_pickle(batch))
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    (folder / "meta").write_bytes(py2_pickle(meta))
    return folder


def make_tar_gz(folder: Path, archive: Path) -> Path:
    """``folder`` packed as ``archive`` (.tar.gz) with its name as the top-level entry."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive
