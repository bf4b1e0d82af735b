"""Image folders: scanning, decoding, bad files, the ImageNet recipe and FolderLoader."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import load_dataset, make_loader
from resnetlab.data.folder_loader import FolderLoader
from resnetlab.data.images import decode_image, scan_folder
from resnetlab.data.split import holdout_split
from resnetlab.data.transforms import ImageNetRecipe, eval_view, ten_crop, train_view
from resnetlab.errors import ConfigError, DataError, MissingSplitError
from resnetlab.evaluation.preprocess import Preprocess

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
    with pytest.warns(UserWarning, match=r"notes\.txt: not an image file"):
        scan = scan_folder(tmp_path)
    assert len(scan.samples) == 12 and len(scan.skipped) == 1
    with pytest.raises(DataError, match=r"dog/notes\.txt: not an image file"):
        scan_folder(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "folder not found"),
        ("no_classes", "no class subfolders"),
        ("empty_class", "eel: class folder has no image files"),
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
    ds = load_dataset("folder", "train", root=tmp_path, image_size=32, test_fraction=0)
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
    ds = load_dataset("folder", root=tmp_path, image_size=16, test_fraction=0)
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
    ds = load_dataset("folder", "train", root=tmp_path, image_size=32)  # 1 a class: all train
    x, y = next(FolderLoader(ds, 3, train=False, workers=0, ten_crop=True).epoch(0))
    assert x.shape == (3, 10, 3, 32, 32) and y.tolist() == [0, 1, 2]


def test_bad_image_is_skipped_counted_and_warned_or_fatal_when_strict(tmp_path):
    _write_tree(tmp_path)
    bad = tmp_path / "dog" / "zz.jpg"
    bad.write_bytes(b"not an image at all")
    ds = load_dataset("folder", "train", root=tmp_path, image_size=32, test_fraction=0)
    loader = make_loader(ds, 13, train=False, workers=0)
    with pytest.warns(UserWarning, match=r"dog/zz\.jpg: cannot decode image"):
        ((x, y),) = list(loader.epoch(0))
    assert x.shape[0] == len(y) == 12 and len(loader.skipped) == 1
    strict = load_dataset("folder", root=tmp_path, image_size=32, strict=True, test_fraction=0)
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


# ----------------------------------------------------------------------------------------------
# The test split of a folder without test/ or val/: held out, seeded, stratified
# ----------------------------------------------------------------------------------------------
SIZES = {"ant": 10, "bee": 7, "cow": 3, "dot": 1}  # images per class of the uneven tree
HOLDOUT_FRACTIONS = (0.2, 0.5, 0.3)
HOLDOUT_SEEDS = range(6)
# RELIABILITY.md row I12: the fractions and seeds, + the folder moved, listed in reverse and its
# samples shuffled; fraction 0, one that rounds to no image, 1.0; train/ alone; data info as
# text and as JSON.
HOLDOUT_CASES = len(HOLDOUT_FRACTIONS) + len(HOLDOUT_SEEDS) + 9


def _write_uneven(root) -> None:
    for label, (name, n) in enumerate(SIZES.items()):
        (root / name).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(_pixels(100 * label + k, 20, 24)).save(root / name / f"{k:02d}.png")


def _split(root, fraction=0.2):
    train = load_dataset("folder", "train", root=root, image_size=16, test_fraction=fraction)
    test = load_dataset("folder", "test", root=root, image_size=16, test_fraction=fraction)
    return train, test


def _relative(ds, root) -> set[str]:
    return {Path(p).relative_to(root).as_posix() for p, _ in ds.samples}


@pytest.mark.parametrize("fraction", HOLDOUT_FRACTIONS)
def test_a_flat_folder_holds_out_a_stratified_test_split(tmp_path, fraction):
    _write_uneven(tmp_path)
    train, test = _split(tmp_path, fraction)
    assert train.holdout == test.holdout == fraction
    per_class = {
        name: sum(1 for _, lbl in test.samples if lbl == i) for i, name in enumerate(SIZES)
    }
    # round(n * fraction), but every class keeps one training image
    assert per_class == {name: min(round(n * fraction), n - 1) for name, n in SIZES.items()}
    names_train, names_test = _relative(train, tmp_path), _relative(test, tmp_path)
    assert not names_train & names_test  # never a training image in the test split
    assert len(names_train | names_test) == sum(SIZES.values())
    assert train.info == test.info  # the statistics are the train part's, for both


def test_the_statistics_come_from_the_train_part_only(tmp_path):
    _write_uneven(tmp_path)
    train = _split(tmp_path)[0]
    views = torch.stack([train[i][0] for i in range(len(train))])  # eval views of the train part
    pixels = views.double().numpy() / 255  # (N, 3, 16, 16)
    np.testing.assert_allclose(train.info.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(train.info.std, pixels.transpose(1, 0, 2, 3).reshape(3, -1).std(1))
    everything = load_dataset("folder", "train", root=tmp_path, image_size=16, test_fraction=0)
    assert everything.info.mean != train.info.mean  # the held-out images changed nothing


def test_the_split_depends_on_seed_and_names_not_on_listing_order_or_place(tmp_path, monkeypatch):
    _write_uneven(tmp_path / "a")
    first = _relative(_split(tmp_path / "a")[1], tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    assert _relative(_split(tmp_path / "elsewhere" / "b")[1], tmp_path / "elsewhere" / "b") == first
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: iter(list(real_scandir(p))[::-1]))
    assert _relative(_split(tmp_path / "a")[1], tmp_path / "a") == first
    samples = scan_folder(tmp_path / "a").samples
    shuffled = random.Random(0).sample(samples, len(samples))
    held = holdout_split(shuffled, tmp_path / "a", 0.5, seed=7)[1]
    assert sorted(held) == sorted(holdout_split(samples, tmp_path / "a", 0.5, seed=7)[1])
    ant = [(str(tmp_path / "a" / "ant" / f"{k:02d}.png"), 0) for k in range(10)]
    picks = {tuple(holdout_split(ant, tmp_path / "a", 0.2, seed)[1]) for seed in HOLDOUT_SEEDS}
    assert len(picks) > 1  # another seed, another split


def test_holding_out_is_logged_once_with_the_counts(tmp_path, caplog):
    _write_uneven(tmp_path)
    with caplog.at_level(logging.INFO, logger="resnetlab.data"):
        _split(tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    n_test = sum(min(round(n * 0.2), n - 1) for n in SIZES.values())
    assert lines == [
        f"{tmp_path}: no test/ or val/ folder: held out 20% of each class as the test split "
        f"(data.test_fraction): {21 - n_test} train, {n_test} test images"
    ]


def test_no_hold_out_means_no_test_split_not_the_train_images(tmp_path):
    _write_uneven(tmp_path)
    assert len(load_dataset("folder", root=tmp_path, test_fraction=0)) == 21
    with pytest.raises(MissingSplitError, match=r"data\.test_fraction is 0, so there is no test"):
        load_dataset("folder", "test", root=tmp_path, test_fraction=0)
    for name in ("ant", "bee", "dot"):
        shutil.rmtree(tmp_path / name)
    with pytest.raises(MissingSplitError, match=r"data.test_fraction 0.1 holds out no image"):
        load_dataset("folder", "test", root=tmp_path, test_fraction=0.1)  # 3 images: rounds to 0
    with pytest.raises(ConfigError, match=r"test_fraction must be in \[0, 1\); got 1.0"):
        load_dataset("folder", root=tmp_path, test_fraction=1.0)


def test_layouts_train_only_and_test_only(tmp_path):
    _write_uneven(tmp_path / "only-train" / "train")
    train, test = _split(tmp_path / "only-train")
    assert (len(train), len(test), test.holdout) == (21 - len(test), len(test), 0.2)
    assert not _relative(train, tmp_path) & _relative(test, tmp_path)
    _write_uneven(tmp_path / "only-test" / "val")
    test = load_dataset("folder", "test", root=tmp_path / "only-test", image_size=16)
    assert len(test) == 21 and test.holdout is None and test.info.classes == tuple(SIZES)
    assert test.info.mean is None  # no train images: a checkpoint brings the statistics
    with pytest.raises(MissingSplitError, match=r"only-test: has val/ but no train/ folder"):
        load_dataset("folder", "train", root=tmp_path / "only-test", image_size=16)
    with pytest.raises(DataError, match="the train split is absent"):
        make_loader(test, 4, train=False, workers=0)


def test_data_info_shows_the_hold_out(tmp_path, capsys):
    _write_uneven(tmp_path)
    argv = ["data", "info", "--data", "folder", "--data-dir", str(tmp_path), "--image-size", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{tmp_path}: no test/ or val/ folder: held out 20% of each class")
    assert "train      17 images, 1..8 per class, the rest of the folder" in out
    assert "test       4 images, 0..2 per class, 20% of each class held out" in out
    assert main([*argv, "--test-fraction", "0.5", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)  # the JSON alone on stdout
    assert record["test_held_out"] == 0.5 and record["counts"] == {"train": 10, "test": 11}
    assert record["per_class"]["test"] == [5, 4, 2, 0] and record["absent"] == {}  # half to even


# ----------------------------------------------------------------------------------------------
# EXIF orientation: every reader sees the scene upright
# ----------------------------------------------------------------------------------------------
# How a viewer turns the stored pixels to show them upright, per EXIF 2.3 (tag 274), written
# with numpy alone: 6 = "the 0th row is the visual right-hand side, the 0th column the top".
DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror left-right
    3: lambda a: a[::-1, ::-1],  # rotate 180
    4: lambda a: a[::-1],  # mirror top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # transpose
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transverse
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise
}
# What a camera stores for an upright scene: the inverse turn.
STORED = {**DISPLAY, 6: lambda a: np.rot90(a, 1), 8: lambda a: np.rot90(a, -1)}
PALETTE = np.array(
    [[230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 20], [20, 220, 220], [220, 20, 220],
     [250, 250, 250], [10, 10, 10], [250, 140, 20], [120, 60, 20], [140, 140, 140], [90, 20, 140],
     [20, 90, 60], [200, 160, 200], [60, 90, 160]], dtype=np.uint8,
)  # fmt: skip
EXIF_READERS = ("decode_image", "folder", "cifar10-jpeg", "predict")
EXIF_CASES = 8 * len(EXIF_READERS)  # RELIABILITY.md row I13: every orientation, every reader


def _upright() -> np.ndarray:
    """A 24 x 40 (H x W) scene of 8x8 blocks of 15 distinct colours: every turn changes it."""
    blocks = PALETTE[np.arange(15).reshape(3, 5)]  # (3, 5, 3)
    return blocks.repeat(8, axis=0).repeat(8, axis=1)  # (24, 40, 3)


def _write_exif_jpeg(path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = np.ascontiguousarray(STORED[orientation](_upright()))
    Image.fromarray(stored).save(path, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())


def _blocks(pixels: np.ndarray) -> np.ndarray:
    """The palette index of each 8x8 block (its inner 4x4 mean, nearest colour): JPEG-proof."""
    h, w = pixels.shape[0] // 8, pixels.shape[1] // 8
    inner = pixels.reshape(h, 8, w, 8, 3)[:, 2:6, :, 2:6].astype(np.float64).mean(axis=(1, 3))
    return np.linalg.norm(inner[:, :, None] - PALETTE[None, None], axis=-1).argmin(-1)


def _decoded_by(reader: str, path, tmp_path) -> np.ndarray:
    """(H, W, 3) pixels of ``path`` as the reader sees them (the predict view: a 24 crop)."""
    if reader == "decode_image":
        return np.asarray(decode_image(path))
    if reader == "folder":
        ds = load_dataset("folder", "train", root=path.parent.parent, test_fraction=0)
        return np.asarray(ds.decode(0)[0])
    if reader == "cifar10-jpeg":
        ds = load_dataset("cifar10-jpeg", "test", root=path.parent.parent.parent)
        return ds.images[0].permute(1, 2, 0).numpy()
    prep = Preprocess(crop=24, resize=24, channels=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    return (prep.load(path).permute(1, 2, 0).numpy() * 255).round()


@pytest.mark.parametrize("reader", EXIF_READERS)
@pytest.mark.parametrize("orientation", sorted(DISPLAY))
def test_exif_orientation_turns_every_image_upright(tmp_path, reader, orientation):
    stored = STORED[orientation](_upright())
    assert np.array_equal(DISPLAY[orientation](stored), _upright())  # the tables agree
    folder = tmp_path / "test" / "a" if reader == "cifar10-jpeg" else tmp_path / "a"
    folder.mkdir(parents=True)
    path = folder / "phone.jpg"
    _write_exif_jpeg(path, orientation)
    if reader == "cifar10-jpeg":  # the JPEG copy of CIFAR-10 has train/ beside test/
        shutil.copytree(folder.parent, tmp_path / "train")
    with Image.open(path) as raw:
        assert raw.getexif()[0x0112] == orientation and raw.size == stored.shape[1::-1]
    got = _decoded_by(reader, path, tmp_path)
    expected = _upright() if reader != "predict" else _upright()[:, 8:32]  # the center crop
    assert got.shape == expected.shape
    np.testing.assert_array_equal(_blocks(got), _blocks(expected))


# ----------------------------------------------------------------------------------------------
# Every format Pillow decodes, first frame, 16-bit scaled; nothing that runs another program
# ----------------------------------------------------------------------------------------------
# Format -> (suffix, save options). All lossless here, so the pixels must come back exactly.
IMAGE_FORMATS = {
    "GIF": (".gif", {}),
    "WEBP": (".webp", {"lossless": True}),
    "TIFF": (".tif", {"compression": "tiff_deflate"}),
    "BMP": (".bmp", {}),
    "PPM": (".ppm", {}),
    "TGA": (".tga", {}),
    "PCX": (".pcx", {}),
    "QOI": (".qoi", {}),
    "ICO": (".ico", {"sizes": [(40, 24)]}),
}
ANIMATED = ("GIF", "WEBP", "TIFF")
DEEP_SUFFIXES = (".png", ".tif")  # 16-bit grayscale
# RELIABILITY.md row I14: each format through decode_image and a folder, each animation, each
# 16-bit file, + a float TIFF and an EPS file (refused).
FORMAT_CASES = 2 * len(IMAGE_FORMATS) + len(ANIMATED) + len(DEEP_SUFFIXES) + 2


@pytest.mark.parametrize("fmt", sorted(IMAGE_FORMATS))
def test_every_pillow_format_is_read_like_png(tmp_path, fmt):
    suffix, options = IMAGE_FORMATS[fmt]
    pixels = _upright()  # 15 colours: a GIF palette holds them exactly
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / f"img{suffix}"
    Image.fromarray(pixels).save(path, fmt, **options)
    np.testing.assert_array_equal(np.asarray(decode_image(path)), pixels)
    Image.fromarray(pixels[::-1].copy()).save(tmp_path / "a" / "other.png")
    ds = load_dataset("folder", "train", root=tmp_path, test_fraction=0, image_size=24)
    assert sorted(Path(p).name for p, _ in ds.samples) == sorted([path.name, "other.png"])
    index = next(i for i, (p, _) in enumerate(ds.samples) if p == str(path))
    np.testing.assert_array_equal(np.asarray(ds.decode(index)[0]), pixels)


@pytest.mark.parametrize("fmt", ANIMATED)
def test_an_animation_or_a_multi_page_file_gives_its_first_frame(tmp_path, fmt):
    first, second = _upright(), _upright()[::-1].copy()
    path = tmp_path / f"anim.{fmt.lower()}"
    frames = [Image.fromarray(first), Image.fromarray(second)]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], **extra)
    with Image.open(path) as img:
        assert img.n_frames == 2
    np.testing.assert_array_equal(np.asarray(decode_image(path)), first)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 24 * 40).round().astype(np.uint16).reshape(24, 40)
    expected = np.round(values / 257).astype(np.uint8)  # 65535 -> 255, exactly 257 apart
    for suffix in DEEP_SUFFIXES:
        Image.fromarray(values).save(tmp_path / f"deep{suffix}")
        with Image.open(tmp_path / f"deep{suffix}") as img:
            assert img.mode.startswith("I;16")
        got = np.asarray(decode_image(tmp_path / f"deep{suffix}"))
        np.testing.assert_array_equal(got, np.stack([expected] * 3, axis=-1))
    Image.fromarray(values.astype(np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DataError, match=r"float\.tif: 32-bit float pixels have no fixed range"):
        decode_image(tmp_path / "float.tif")


def test_formats_that_would_run_a_program_are_not_read(tmp_path):
    from resnetlab.data.images import FORMATS, IMAGE_SUFFIXES

    assert "EPS" not in FORMATS and ".eps" not in IMAGE_SUFFIXES
    assert {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"} <= set(FORMATS)
    eps = tmp_path / "a" / "x.eps"
    eps.parent.mkdir()
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    with pytest.raises(DataError, match=r"x\.eps: cannot decode image \(cannot identify"):
        decode_image(eps)
    Image.fromarray(_upright()).save(tmp_path / "a" / "ok.png")
    with pytest.warns(UserWarning, match=r"x\.eps: not an image file"):
        assert [Path(p).name for p, _ in scan_folder(tmp_path).samples] == ["ok.png"]
