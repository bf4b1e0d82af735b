"""Image folders: scanning, decoding, bad files, the ImageNet recipe and FolderLoader."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.data import load_dataset, make_loader
from resnetlab.data.folder_loader import FolderLoader
from resnetlab.data.images import decode_image, scan_folder
from resnetlab.data.transforms import ImageNetRecipe, eval_view, ten_crop, train_view
from resnetlab.errors import DataError

CLASSES = ("cat", "dog", "eel")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / ".cache"))  # hidden: not a class folder


def _pixels(seed: int, h: int = 37, w: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_tree(root, per_class: int = 4, h: int = 37, w: int = 50) -> dict:
    """Class folders of lossless PNGs; returns {path: (pixels, label)}."""
    written = {}
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = _pixels(10 * label + k, h, w)
            path = root / name / f"{k:02d}.png"
            Image.fromarray(pixels).save(path)
            written[str(path)] = (pixels, label)
    return written


def _normalize(pixels: np.ndarray, info) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) normalised, written out plainly."""
    x = pixels.transpose(2, 0, 1) / 255.0
    return (x - np.array(info.mean)[:, None, None]) / np.array(info.std)[:, None, None]


def test_scan_lists_classes_and_files_in_order(tmp_path):
    written = _write_tree(tmp_path)
    scan = scan_folder(tmp_path)
    assert scan.classes == CLASSES
    assert [p for p, _ in scan.samples] == sorted(written)
    assert [lbl for _, lbl in scan.samples] == [0] * 4 + [1] * 4 + [2] * 4


def test_non_image_file_is_skipped_with_a_warning_or_fatal_when_strict(tmp_path):
    _write_tree(tmp_path)
    (tmp_path / "dog" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning, match=r"notes\.txt: not a JPEG or PNG file"):
        scan = scan_folder(tmp_path)
    assert len(scan.samples) == 12 and len(scan.skipped) == 1
    with pytest.raises(DataError, match=r"dog/notes\.txt: not a JPEG or PNG file"):
        scan_folder(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "folder not found"),
        ("no_classes", "no class subfolders"),
        ("empty_class", "eel: class folder has no JPEG or PNG files"),
    ],
)
def test_bad_folder_layouts_name_the_path(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout == "no_classes":
        root.mkdir()
        (root / "a.png").write_bytes(b"")
    elif layout == "empty_class":
        _write_tree(root)
        for f in (root / "eel").iterdir():
            f.unlink()
    with pytest.raises(DataError, match=message):
        load_dataset("folder", root=root)


def test_undecodable_and_oversized_images_are_refused_by_name(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DataError, match=r"bad\.jpg: cannot decode image"):
        decode_image(bad)
    truncated = tmp_path / "cut.png"
    Image.fromarray(_pixels(0)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(DataError, match=r"cut\.png: cannot decode image"):
        decode_image(truncated)
    big = tmp_path / "big.png"
    Image.fromarray(_pixels(0)).save(big)
    with pytest.raises(
        DataError, match=r"big\.png: image of 50x37 pixels exceeds the limit of 100"
    ):
        decode_image(big, max_pixels=100)


def test_eval_view_is_the_center_crop_of_the_resized_image(tmp_path):
    written = _write_tree(tmp_path)
    ds = load_dataset("folder", root=tmp_path, image_size=32)
    assert ds.recipe.eval_resize == 37  # shorter side already 37: the crop is a plain slice
    assert ds.info.image_size == (32, 32) and ds.info.classes == CLASSES
    image, label = ds[5]
    pixels, expected_label = written[ds.samples[5][0]]
    assert label == expected_label
    top, left = (37 - 32) // 2, (50 - 32) // 2
    expected = pixels[top : top + 32, left : left + 32].transpose(2, 0, 1)
    np.testing.assert_array_equal(image.numpy(), expected)


def test_train_view_is_a_seeded_window_of_the_image_or_its_mirror():
    pixels = _pixels(3)
    recipe = ImageNetRecipe(crop=32, resize_min=37, resize_max=37, eval_resize=37)
    img = Image.fromarray(pixels)
    flips = set()
    for seed in range(8):
        view = np.asarray(train_view(img, recipe, random.Random(seed)))
        assert view.shape == (32, 32, 3)
        again = np.asarray(train_view(img, recipe, random.Random(seed)))
        np.testing.assert_array_equal(view, again)
        windows = [
            (flip, t, l)
            for flip, source in ((False, pixels), (True, pixels[:, ::-1]))
            for t in range(6)
            for l in range(19)
            if np.array_equal(source[t : t + 32, l : l + 32], view)
        ]
        assert windows, "the view is not a window of the image"
        flips.add(windows[0][0])
    assert flips == {False, True}


def test_train_view_scales_the_shorter_side_in_range():
    img = Image.fromarray(_pixels(1, 100, 150))
    recipe = ImageNetRecipe.scaled(32)
    assert (recipe.resize_min, recipe.resize_max, recipe.eval_resize) == (37, 69, 37)
    assert eval_view(img, recipe).size == (32, 32)
    assert train_view(img, recipe, random.Random(0)).size == (32, 32)


def test_ten_crop_takes_corners_center_and_mirrors():
    image = torch.arange(3 * 6 * 7).reshape(3, 6, 7)
    crops = ten_crop(image, 4)
    assert crops.shape == (10, 3, 4, 4)
    assert torch.equal(crops[0], image[:, :4, :4]) and torch.equal(crops[3], image[:, 2:, 3:])
    assert torch.equal(crops[1], image[:, :4, 3:]) and torch.equal(crops[2], image[:, 2:, :4])
    assert torch.equal(crops[4], image[:, 1:5, 1:5])
    assert torch.equal(crops[5:], crops[:5].flip(-1))


def test_folder_loader_eval_batches_are_normalised_views_in_order(tmp_path):
    written = _write_tree(tmp_path)
    ds = load_dataset("folder", "test", root=tmp_path, image_size=32)
    loader = make_loader(ds, 5, train=False, workers=0)
    assert isinstance(loader, FolderLoader) and len(loader) == 3
    batches = list(loader.epoch(0))
    labels = torch.cat([y for _, y in batches])
    assert labels.tolist() == [lbl for _, lbl in ds.samples]
    x0 = batches[0][0][1]
    pixels = written[ds.samples[1][0]][0][2:34, 9:41]
    np.testing.assert_allclose(x0.numpy(), _normalize(pixels, ds.info), rtol=0, atol=1e-5)


def test_folder_loader_resume_shards_and_workers_agree(tmp_path):
    _write_tree(tmp_path, per_class=5)
    ds = load_dataset("folder", root=tmp_path, image_size=16)
    loader = make_loader(ds, 4, train=True, seed=3, workers=0)
    full = list(loader.epoch(2))
    assert len(full) == len(loader) == 3
    for (x1, y1), (x2, y2) in zip(full[1:], loader.epoch(2, start=1), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    threaded = list(make_loader(ds, 4, train=True, seed=3, workers=2).epoch(2))
    for (x1, y1), (x2, y2) in zip(full, threaded, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    shards = [
        FolderLoader(ds, 1, train=True, seed=3, rank=r, world_size=2, workers=0) for r in range(2)
    ]
    seen = [[pair[0] for batch in s._batches(2) for pair in batch] for s in shards]
    assert len(seen[0]) == len(seen[1]) == 7 and not set(seen[0]) & set(seen[1])


def test_ten_crop_eval_yields_ten_views_per_image(tmp_path):
    _write_tree(tmp_path, per_class=1)
    ds = load_dataset("folder", "test", root=tmp_path, image_size=32)
    x, y = next(FolderLoader(ds, 3, train=False, workers=0, ten_crop=True).epoch(0))
    assert x.shape == (3, 10, 3, 32, 32) and y.tolist() == [0, 1, 2]


def test_bad_image_is_skipped_counted_and_warned_or_fatal_when_strict(tmp_path):
    _write_tree(tmp_path)
    bad = tmp_path / "dog" / "zz.jpg"
    bad.write_bytes(b"not an image at all")
    ds = load_dataset("folder", "test", root=tmp_path, image_size=32)
    loader = make_loader(ds, 13, train=False, workers=0)
    with pytest.warns(UserWarning, match=r"dog/zz\.jpg: cannot decode image"):
        ((x, y),) = list(loader.epoch(0))
    assert x.shape[0] == len(y) == 12 and len(loader.skipped) == 1
    strict = load_dataset("folder", "test", root=tmp_path, image_size=32, strict=True)
    with pytest.raises(DataError, match=r"zz\.jpg: cannot decode image"):
        list(make_loader(strict, 13, train=False, workers=0).epoch(0))


def test_train_test_layout_and_mismatched_classes(tmp_path):
    _write_tree(tmp_path / "train", per_class=2)
    _write_tree(tmp_path / "val", per_class=1)
    train = load_dataset("folder", "train", root=tmp_path, image_size=32)
    test = load_dataset("folder", "test", root=tmp_path, image_size=32)
    assert (len(train), len(test)) == (6, 3) and test.info == train.info
    (tmp_path / "val" / "fox").mkdir()
    Image.fromarray(_pixels(0)).save(tmp_path / "val" / "fox" / "a.png")
    with pytest.raises(DataError, match="class folders differ"):
        load_dataset("folder", "test", root=tmp_path, image_size=32)
