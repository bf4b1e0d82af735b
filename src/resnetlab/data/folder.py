"""``FolderDataset``: a user's own images (or ImageNet) in class subfolders, decoded lazily.

Images are decoded one at a time, in DataLoader workers when ``FolderLoader`` drives them. A file
that fails to decode is reported by name, then skipped and counted with a warning, or fatal with
``strict``. A folder without a test folder has a test split all the same: a seeded, stratified
share of each class held out of training (``load_folder``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from resnetlab.data.files import fingerprint
from resnetlab.data.images import (
    DECODE_VERSION,
    MAX_PIXELS,
    FolderScan,
    decode_image,
    scan_folder,
)
from resnetlab.data.info import DatasetInfo
from resnetlab.data.split import TEST_FRACTION, holdout_split
from resnetlab.data.stats import cached_stats, channel_histograms, stats_from_histograms
from resnetlab.data.transforms import ImageNetRecipe, eval_view, to_uint8_tensor
from resnetlab.errors import DataError, MissingSplitError

STATS_SAMPLE = 1000  # images, evenly spaced over the train split, that the mean/std come from
# Names of the evaluation split under a root that holds train/ beside it, in order of preference.
TEST_DIRS = ("test", "val")
HOLDOUT_SEED = 0  # fixed: a folder's test split must be the same for every run and every user
log = logging.getLogger(__name__)
_LOGGED: set[str] = set()


class FolderDataset(Dataset):
    """Class-subfolder images, decoded on access.

    ``ds[i]`` is the evaluation view (resize + center crop) of image i as a (3, crop, crop)
    uint8 tensor and its label; ``ds.decode(i)`` reports a bad file instead of raising, which is
    what the loader's workers use.

    Args:
        root: the folder of class subfolders.
        info: the dataset's classes, crop size and statistics.
        samples: (path, label) pairs.
        recipe: sizes of the ImageNet recipe.
        strict: raise on the first undecodable file instead of skipping it.
        max_pixels: refuse images whose header declares more pixels than this.

    Attributes:
        holdout: the share of each class held out as the test split when the folder has no
            test folder (``load_folder``), else ``None``.
    """

    def __init__(
        self,
        root: Path,
        info: DatasetInfo,
        samples: list[tuple[str, int]],
        *,
        recipe: ImageNetRecipe,
        strict: bool = False,
        max_pixels: int = MAX_PIXELS,
    ):
        self.root = root
        self.info = info
        self.samples = samples
        self.recipe = recipe
        self.strict = strict
        self.max_pixels = max_pixels
        self.holdout: float | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        img = eval_view(decode_image(path, self.max_pixels), self.recipe)
        return to_uint8_tensor(img), label

    def decode(self, index: int) -> tuple[Image.Image | None, int, str]:
        """Decode image ``index`` without raising.

        Returns:
            (RGB image, label, "") or, for a file that cannot be decoded, (None, label, problem).
        """
        path, label = self.samples[index]
        try:
            return decode_image(path, self.max_pixels), label, ""
        except DataError as err:
            return None, label, str(err)


def load_folder(
    split: str,
    root: Path,
    *,
    strict: bool = False,
    image_size: int | None = None,
    test_fraction: float = TEST_FRACTION,
) -> FolderDataset:
    """One split of an image folder.

    ``root`` holds ``train/`` and ``test/`` (or ``val/``) folders of class subfolders, or the
    class subfolders themselves. Without a test folder, ``test_fraction`` of each class is held
    out as the test split (``holdout_split``, seeded with ``HOLDOUT_SEED``), as Keras's
    ``validation_split`` does, and a log line says so: the test split is never the training
    images. A root holding only ``test/`` (or ``val/``) has a test split and no train split.
    The mean/std come from up to ``STATS_SAMPLE`` evaluation views of the train images, cached;
    they are ``None`` when the train split is absent (a checkpoint brings its own).

    Args:
        split: ``"train"`` or ``"test"``.
        root: the folder.
        strict: non-image files are fatal instead of skipped with a warning.
        image_size: the crop side (default 224; the recipe's other sizes scale with it).
        test_fraction: the share of each class held out when there is no test folder.

    Raises:
        MissingSplitError: the train split of a root that holds only a test folder; the test
            split of one without a test folder when ``test_fraction`` holds out no image.
    """
    recipe = ImageNetRecipe() if image_size in (None, 224) else ImageNetRecipe.scaled(image_size)
    train_dir, test_dir = split_dirs(root)
    if train_dir is None:
        if split == "train":
            raise MissingSplitError(f"{root}: has {test_dir.name}/ but no train/ folder")
        scan, train_samples = scan_folder(test_dir, strict=strict), None
        samples, classes = scan.samples, scan.classes
    elif test_dir is None:
        scan = scan_folder(train_dir, strict=strict)
        train_samples, samples = _held_out(scan, split, test_fraction)
        classes = scan.classes
    else:
        scan = scan_folder(train_dir if split == "train" else test_dir, strict=strict)
        train_scan = scan if split == "train" else scan_folder(train_dir, strict=strict)
        if scan.classes != train_scan.classes:
            raise DataError(f"{test_dir}: class folders differ from those of {train_dir}")
        train_samples, samples, classes = train_scan.samples, scan.samples, scan.classes
    mean, std = _train_stats(train_samples, recipe, train_dir) if train_samples else (None, None)
    info = DatasetInfo("folder", classes, (recipe.crop, recipe.crop), 3, mean, std)
    ds = FolderDataset(scan.root, info, samples, recipe=recipe, strict=strict)
    ds.holdout = test_fraction if test_dir is None and train_dir is not None else None
    return ds


def split_dirs(root: Path) -> tuple[Path | None, Path | None]:
    """(train folder, test folder) of ``root``; ``None`` for a split it has no folder for.

    The test folder is ``None`` when the test split is held out of the train folder (a root of
    class subfolders, or one with ``train/`` alone), the train folder when ``root`` holds
    nothing but ``test/`` and/or ``val/``.
    """
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    tests = [root / name for name in TEST_DIRS if (root / name).is_dir()]
    if (root / "train").is_dir():
        return root / "train", tests[0] if tests else None
    subfolders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if tests and subfolders <= set(TEST_DIRS):
        return None, tests[0]
    return root, None


def _held_out(
    scan: FolderScan, split: str, fraction: float
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train samples, samples of ``split``) when the test split is held out of ``scan``."""
    train, test = holdout_split(scan.samples, scan.root, fraction, HOLDOUT_SEED)
    if split == "test" and fraction == 0:
        raise MissingSplitError(
            f"{scan.root}: no test/ or val/ folder and data.test_fraction is 0, so there is no "
            "test split (the train images are not one); hold out a share with "
            "data.test_fraction, or add a test/ folder beside train/"
        )
    if split == "test" and not test:
        raise MissingSplitError(
            f"{scan.root}: data.test_fraction {fraction} holds out no image: every class has too "
            "few images for a share of them to round to one"
        )
    if fraction > 0:
        _log_once(
            f"{scan.root}: no test/ or val/ folder: held out {fraction:.0%} of each class as the "
            f"test split (data.test_fraction): {len(train)} train, {len(test)} test images"
        )
    return train, (test if split == "test" else train)


def _log_once(message: str) -> None:
    """Log ``message`` the first time this process sees it (train and test loads say the same)."""
    if message not in _LOGGED:
        _LOGGED.add(message)
        log.info(message)


def _train_stats(
    samples: list[tuple[str, int]], recipe: ImageNetRecipe, train_dir: Path
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    step = max(1, len(samples) // STATS_SAMPLE)
    paths = [path for path, _ in samples[::step][:STATS_SAMPLE]]
    key = f"folder-{recipe.crop}-d{DECODE_VERSION}:{fingerprint(paths)}-{len(samples)}"

    def views():
        for path in paths:
            try:
                yield to_uint8_tensor(eval_view(decode_image(path), recipe))[None]  # (1, 3, c, c)
            except DataError:  # reported by name when the loader meets the file
                continue

    def compute():
        hist = channel_histograms(views(), 3)
        if not hist.sum():
            raise DataError(f"{train_dir}: none of the images could be decoded")
        return stats_from_histograms(hist)

    return cached_stats(key, compute, f"{train_dir} (train split)")
