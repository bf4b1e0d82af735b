"""``FolderDataset``: a user's own images (or ImageNet) in class subfolders, decoded lazily.

Images are decoded one at a time, in DataLoader workers when ``FolderLoader`` drives them. A file
that fails to decode is reported by name, then skipped and counted with a warning, or fatal with
``strict``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from resnetlab.data.files import fingerprint
from resnetlab.data.images import DECODE_VERSION, MAX_PIXELS, decode_image, scan_folder
from resnetlab.data.info import DatasetInfo
from resnetlab.data.stats import cached_stats, channel_histograms, stats_from_histograms
from resnetlab.data.transforms import ImageNetRecipe, eval_view, to_uint8_tensor
from resnetlab.errors import DataError

STATS_SAMPLE = 1000  # images, evenly spaced over the train split, that the mean/std come from
# Names of the evaluation split under a root that holds train/ beside it, in order of preference.
TEST_DIRS = ("test", "val")


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
    split: str, root: Path, *, strict: bool = False, image_size: int | None = None
) -> FolderDataset:
    """One split of an image folder.

    ``root`` holds class subfolders, or ``train/`` and ``test/`` (or ``val/``) folders that do;
    in the first case both splits are the same images. The mean/std come from up to
    ``STATS_SAMPLE`` evaluation views of the train images, cached.

    Args:
        split: ``"train"`` or ``"test"``.
        root: the folder.
        strict: non-image files are fatal instead of skipped with a warning.
        image_size: the crop side (default 224; the recipe's other sizes scale with it).
    """
    recipe = ImageNetRecipe() if image_size in (None, 224) else ImageNetRecipe.scaled(image_size)
    train_dir, test_dir = split_dirs(root)
    scan = scan_folder(train_dir if split == "train" else test_dir, strict=strict)
    train_scan = scan if split == "train" else scan_folder(train_dir, strict=strict)
    if scan.classes != train_scan.classes:
        raise DataError(f"{test_dir}: class folders differ from those of {train_dir}")
    mean, std = _train_stats(train_scan.samples, recipe, train_dir)
    info = DatasetInfo("folder", scan.classes, (recipe.crop, recipe.crop), 3, mean, std)
    return FolderDataset(scan.root, info, scan.samples, recipe=recipe, strict=strict)


def split_dirs(root: Path) -> tuple[Path, Path]:
    """(train folder, test folder) of ``root`` (see ``load_folder``)."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    if not (root / "train").is_dir():
        return root, root
    for name in TEST_DIRS:
        if (root / name).is_dir():
            return root / "train", root / name
    raise DataError(f"{root}: has train/ but no test/ or val/ folder")


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
