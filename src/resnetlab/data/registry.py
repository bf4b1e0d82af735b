"""The one list of dataset names: ``load_dataset``, ``list_datasets`` and the default folders.

Where a dataset's files are looked for, first match wins:

1. ``root`` (``--data-dir``);
2. ``$RESNETLAB_DATA/<folder>``, with the folder named in the table below;
3. ``./data/<folder>``.

``digits`` and ``synthetic`` need no files; ``folder`` always needs ``--data-dir``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resnetlab.data.split import TEST_FRACTION
from resnetlab.errors import ConfigError, check_choice

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset.

    Attributes:
        name: the registry name (``--data NAME``).
        folder: its default folder under ``$RESNETLAB_DATA``; empty when it needs none, ``None``
            when ``--data-dir`` is required.
        description: one line for listings.
        loader: ``loader(split, root, download=, verify=, strict=, image_size=,
            test_fraction=)``.
    """

    name: str
    folder: str | None
    description: str
    loader: Callable[..., object]


def _digits(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.digits import load_digits

    return load_digits(split, image_size)


def _cifar10(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.cifar import load_cifar

    return load_cifar("cifar10", split, root, download=download, verify=verify)


def _cifar100(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.cifar import load_cifar

    return load_cifar("cifar100", split, root, download=download, verify=verify)


def _signs(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.signs import load_signs

    return load_signs(split, root)


def _cifar10_jpeg(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.jpeg_cache import load_image_array

    return load_image_array("cifar10-jpeg", split, root, strict=strict)


def _synthetic(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.synthetic import load_synthetic

    return load_synthetic(split, image_size)


def _folder(split, root, *, download, verify, strict, image_size, test_fraction):
    from resnetlab.data.folder import load_folder

    return load_folder(
        split, root, strict=strict, image_size=image_size, test_fraction=test_fraction
    )


_DATASETS = {
    e.name: e
    for e in [
        DatasetEntry("digits", "", "scikit-learn's 8x8 digits, upsampled; no download", _digits),
        DatasetEntry("cifar10", "cifar10", "CIFAR-10, python version (pickles)", _cifar10),
        DatasetEntry("cifar100", "cifar100", "CIFAR-100, python version, fine labels", _cifar100),
        DatasetEntry(
            "cifar10-jpeg", "cifar10-jpeg", "CIFAR-10 as JPEG folders, decoded once", _cifar10_jpeg
        ),
        DatasetEntry("signs", "signs", "deeplearning.ai SIGNS hand signs (HDF5)", _signs),
        DatasetEntry("folder", None, "class subfolders of images (ImageNet layout)", _folder),
        DatasetEntry(
            "synthetic", "", "random images and labels; no files (smoke runs)", _synthetic
        ),
    ]
}


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_DATASETS)


def get_entry(name: str) -> DatasetEntry:
    """The entry for ``name``; an unknown name raises ``ConfigError``."""
    check_choice("--data", name, list_datasets())
    return _DATASETS[name]


def resolve_root(name: str, root: str | Path | None) -> Path | None:
    """The folder where ``name``'s files are looked for (see the module docstring)."""
    entry = get_entry(name)
    if root is not None:
        return Path(root).expanduser()
    if entry.folder is None:
        raise ConfigError(f"--data {name} needs --data-dir PATH (a folder of class subfolders)")
    if not entry.folder:
        return None
    base = os.environ.get("RESNETLAB_DATA")
    return (Path(base) if base else Path("data")) / entry.folder


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    *,
    download: bool = False,
    verify: bool = True,
    strict: bool = False,
    image_size: int | None = None,
    test_fraction: float = TEST_FRACTION,
):
    """Load one split of a registered dataset.

    Args:
        name: a name from ``list_datasets()``.
        split: ``"train"`` or ``"test"``.
        root: the dataset's folder (``--data-dir``); see the module docstring for the default.
        download: fetch the official archive when it is missing (CIFAR only).
        verify: check official md5 checksums where they are known.
        strict: make undecodable image files fatal instead of skipped with a warning.
        image_size: image side for ``digits`` and ``synthetic`` (default 32) and the crop of
            ``folder`` (224).
        test_fraction: the share of each class that ``folder`` holds out as its test split
            when the folder has no ``test/`` or ``val/`` (the other datasets have their own).

    Returns:
        An ``ArrayDataset`` (digits, synthetic, CIFAR, SIGNS, cifar10-jpeg) or a
        ``FolderDataset``.

    Raises:
        ConfigError: an unknown name or split, or a missing ``--data-dir``.
        MissingSplitError: the split's files are absent (the other split may be present).
        DataError: a missing, corrupt or malformed file, named in the message.
    """
    entry = get_entry(name)
    check_choice("split", split, SPLITS)
    return entry.loader(
        split,
        resolve_root(name, root),
        download=download,
        verify=verify,
        strict=strict,
        image_size=image_size,
        test_fraction=test_fraction,
    )
