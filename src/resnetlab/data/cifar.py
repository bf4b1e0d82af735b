"""CIFAR-10 and CIFAR-100, python version: the official pickles, verified and read safely.

``root`` may be the batch folder itself (``cifar-10-batches-py/``), the folder holding it, or a
folder holding the official ``.tar.gz`` (extracted on first use; fetched with ``download``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnetlab.data.archive import safe_extract
from resnetlab.data.array import ArrayDataset
from resnetlab.data.download import download as fetch
from resnetlab.data.files import fingerprint, md5_file
from resnetlab.data.info import DatasetInfo
from resnetlab.data.stats import array_stats, cached_stats
from resnetlab.data.unpickle import safe_load
from resnetlab.errors import DataError, MissingSplitError

IMAGE_BYTES = 3 * 32 * 32  # a row: 1024 red, then 1024 green, then 1024 blue values


@dataclass(frozen=True)
class CifarSpec:
    """Where and how one CIFAR variant is stored (REFERENCE.md, "Data formats").

    Attributes:
        folder: the batch folder inside the archive.
        archive: the official archive's file name.
        url: the official address.
        archive_md5: the official archive's md5.
        train, test: batch file names of each split.
        meta: the file holding the class names.
        label_key, names_key: dict keys of the labels and of the class names.
        md5: official md5 of each file.
    """

    folder: str
    archive: str
    url: str
    archive_md5: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    md5: dict[str, str]


SPECS = {
    "cifar10": CifarSpec(
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        md5={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
    ),
    "cifar100": CifarSpec(
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        train=("train",),
        test=("test",),
        meta="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        md5={
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
    ),
}


def load_cifar(
    name: str, split: str, root: Path, *, download: bool = False, verify: bool = True
) -> ArrayDataset:
    """One split of CIFAR-10 or CIFAR-100 (fine labels) as an ``ArrayDataset``.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` or ``"test"``.
        root: see the module docstring.
        download: fetch the official archive into ``root`` when nothing is found there.
        verify: check every file (and a downloaded archive) against the official md5.

    The test split loads without the train batches (its info then has no mean/std: evaluating a
    checkpoint uses the checkpoint's own).

    Raises:
        MissingSplitError: a batch file of the split is absent.
    """
    spec = SPECS[name]
    folder = locate(spec, root, download=download, verify=verify)
    classes = read_class_names(spec, folder, verify=verify)
    images, labels = read_batches(spec, folder, getattr(spec, split), len(classes), verify=verify)
    train_files = [folder / f for f in spec.train]
    if split == "test" and not all(os.path.lexists(f) for f in train_files):
        mean = std = None
    else:
        mean, std = cached_stats(
            f"{name}:{fingerprint(train_files)}",
            lambda: array_stats(
                read_batches(spec, folder, spec.train, len(classes), verify=False)[0]
            ),
            str(folder),
        )
    info = DatasetInfo(name, classes, (32, 32), 3, mean, std)
    return ArrayDataset(images, labels, info)


def locate(
    spec: CifarSpec, root: Path, *, download: bool, verify: bool, url: str | None = None
) -> Path:
    """The batch folder under ``root``, extracting (first downloading) the archive if needed.

    ``url`` replaces the official address (a mirror); the official md5 still applies.
    """
    # lexists, not is_file: a FIFO or a folder in a file's place is named by the reader, later.
    for candidate in (root, root / spec.folder):
        if os.path.lexists(candidate / spec.meta):
            return candidate
    archive = root / spec.archive
    if not os.path.lexists(archive):
        if not download:
            raise DataError(
                f"{root}: found neither {spec.folder}/ nor {spec.archive} "
                "(pass --download to fetch it, or --data-dir to look elsewhere)"
            )
        fetch(url or spec.url, archive, md5=spec.archive_md5 if verify else None)
    elif verify:
        check_md5(archive, spec.archive_md5)
    safe_extract(archive, root)
    if not (root / spec.folder / spec.meta).is_file():
        raise DataError(f"{archive}: does not contain {spec.folder}/{spec.meta}")
    return root / spec.folder


def check_md5(path: Path, expected: str) -> None:
    """Raise ``DataError`` unless the file's md5 is ``expected`` (or it is not a regular file)."""
    got = md5_file(path)
    if got != expected:
        raise DataError(
            f"{path}: md5 {got} does not match the official {expected} "
            "(a damaged or different file; --no-verify skips the check)"
        )


def read_class_names(spec: CifarSpec, folder: Path, *, verify: bool) -> tuple[str, ...]:
    """The class names stored in the meta file."""
    path = folder / spec.meta
    if verify:
        check_md5(path, spec.md5[spec.meta])
    meta = _dict(path)
    names = _field(meta, spec.names_key, path)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: '{spec.names_key}' must be a list of class names")
    return tuple(names)


def read_batches(
    spec: CifarSpec, folder: Path, files: tuple[str, ...], num_classes: int, *, verify: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of the given batch files, in order."""
    images, labels = [], []
    for name in files:
        path = folder / name
        if not os.path.lexists(path):
            raise MissingSplitError(f"{path}: file not found")
        if verify:
            check_md5(path, spec.md5[name])
        batch = _dict(path)
        data, batch_labels = _field(batch, "data", path), _field(batch, spec.label_key, path)
        if not (
            isinstance(data, np.ndarray)
            and data.dtype == np.uint8
            and data.ndim == 2
            and data.shape[1] == IMAGE_BYTES
        ):
            got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data)
            raise DataError(f"{path}: 'data' must be a uint8 array (N, {IMAGE_BYTES}); got {got}")
        _check_labels(path, spec.label_key, batch_labels, data.shape[0], num_classes)
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))  # (N, 3, 32, 32)
        labels.append(torch.tensor(batch_labels, dtype=torch.int64))
    return torch.cat(images), torch.cat(labels)


def _dict(path: Path) -> dict:
    obj = safe_load(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, got {type(obj).__name__}")
    return obj


def _field(d: dict, key: str, path: Path) -> object:
    """``d[key]``, or a ``DataError`` naming the missing key and the keys the file has."""
    if key in d:
        return d[key]
    hint = ""
    if key.encode() in d:  # pickled in Python 3 from a dict read with encoding="bytes"
        hint = f" (it has b'{key}': keys must be str, as in the official files)"
    found = ", ".join(repr(k)[:40] for k in list(d)[:6]) + (", ..." if len(d) > 6 else "")
    raise DataError(f"{path}: missing key '{key}'{hint}; keys found: {found or 'none'}")


def _check_labels(path: Path, key: str, labels: object, n: int, num_classes: int) -> None:
    if not isinstance(labels, list) or len(labels) != n:
        raise DataError(f"{path}: '{key}' must be a list of {n} labels")
    for label in labels:
        if type(label) is not int:
            raise DataError(f"{path}: '{key}' holds a {type(label).__name__}, not an int")
        if not 0 <= label < num_classes:
            raise DataError(f"{path}: label {label} is out of range 0..{num_classes - 1}")
