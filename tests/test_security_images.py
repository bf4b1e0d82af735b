"""Decompression bombs: images that declare (or decode to) enormous sizes are refused before any
pixel is decoded, by the image reader, the folder dataset and ``resnetlab predict``, in every
format (PNG, JPEG, GIF, BMP, WebP, TIFF). And files that are not regular files (FIFOs, devices,
folders, looping or broken links) are named without being read.

"Before decoding" is checked, not assumed: Pillow's decoder factory is replaced by a spy that
fails the test if it is ever called for a bomb.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from reliability_support import hang_guard, peak_rss_mb, run_cli, tiny_checkpoint
from resnetlab.cli import main
from resnetlab.data.folder import load_folder
from resnetlab.data.images import MAX_ASPECT, MAX_PIXELS, decode_image
from resnetlab.errors import DataError


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR (with a correct CRC) declares width x height."""
    data = bytearray(_encode(Image.new("RGB", (8, 8), (200, 10, 10)), "PNG"))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))  # CRC of type + data
    return bytes(data)


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A valid 8x8 JPEG whose SOF0 segment declares width x height."""
    data = bytearray(_encode(Image.new("RGB", (8, 8), (200, 10, 10)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _gif_declaring(width: int, height: int) -> bytes:
    """A valid 8x8 GIF whose logical screen declares width x height."""
    data = bytearray(_encode(Image.new("P", (8, 8), 3), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def _bmp_declaring(width: int, height: int) -> bytes:
    """A valid 8x8 BMP whose info header declares width x height."""
    data = bytearray(_encode(Image.new("RGB", (8, 8), (200, 10, 10)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def _webp_declaring(width: int, height: int) -> bytes:
    """A valid lossless 8x8 WebP whose VP8L header declares width x height (14 bits each)."""
    data = bytearray(_encode(Image.new("RGB", (8, 8), (200, 10, 10)), "WEBP", lossless=True))
    at = data.index(b"VP8L") + 9  # past the chunk header and the 0x2f signature byte
    rest = int.from_bytes(data[at : at + 4], "little") & ~((1 << 28) - 1)
    bits = (width - 1) | (height - 1) << 14 | rest
    data[at : at + 4] = bits.to_bytes(4, "little")
    return bytes(data)


def _zlib_bomb() -> bytes:
    """A real PNG, a few kB on disk, that decodes to 12000 x 12000 = 144 M pixels."""
    return _encode(Image.new("1", (12000, 12000)), "PNG")


BOMBS = {
    "png-declares-100000x100000": lambda: _png_declaring(100_000, 100_000),
    "png-declares-70000x1000": lambda: _png_declaring(70_000, 1000),
    "jpeg-declares-65000x65000": lambda: _jpeg_declaring(65_000, 65_000),
    "png-zlib-bomb-12000x12000": _zlib_bomb,
    "png-strip-1x65000": lambda: _encode(Image.new("RGB", (1, 65_000)), "PNG"),
    "png-strip-20000x1": lambda: _encode(Image.new("RGB", (20_000, 1)), "PNG"),
    "gif-declares-9000x9000": lambda: _gif_declaring(9000, 9000),
    "gif-declares-65000x65000": lambda: _gif_declaring(65_000, 65_000),
    "gif-strip-20000x1": lambda: _encode(Image.new("P", (20_000, 1)), "GIF"),
    "bmp-declares-9000x9000": lambda: _bmp_declaring(9000, 9000),
    "webp-declares-9000x9000": lambda: _webp_declaring(9000, 9000),
    "webp-declares-16383x16383": lambda: _webp_declaring(16383, 16383),
    # a real one: a few tens of kB that decode to 144 M pixels
    "tiff-deflate-bomb-12000x12000": lambda: _encode(
        Image.new("1", (12000, 12000)), "TIFF", compression="tiff_deflate"
    ),
}
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "gif": ".gif", "bmp": ".bmp", "webp": ".webp",
            "tiff": ".tif"}  # fmt: skip
READERS = ["decode_image", "folder", "predict"]
CASES = len(BOMBS) * len(READERS)
PEAK_GROWTH_MB = 100  # a refused bomb must not allocate its pixels (144 M+ of them)


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for name, make in BOMBS.items():
        suffix = SUFFIXES[name.split("-")[0]]
        paths[name] = folder / f"{name}{suffix}"
        paths[name].write_bytes(make())
    return paths


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if Pillow starts decoding pixels."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError("Pillow started decoding a refused image")

    monkeypatch.setattr(Image, "_getdecoder", spy)
    return calls


def test_the_bombs_are_small_files_that_declare_huge_images(bomb_files, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # read the sizes past Pillow's own check
    for name, path in bomb_files.items():
        assert path.stat().st_size < 64_000, name
        with Image.open(path) as img:
            w, h = img.size
        assert w * h > MAX_PIXELS or max(w, h) > MAX_ASPECT * min(w, h), name


def _expected(name: str) -> str:
    # Pillow refuses above 2 x its MAX_IMAGE_PIXELS (179 M) on its own, when opening the file;
    # decode_image refuses smaller bombs (its limit is 67 M pixels) and extreme strips.
    if "strip" in name:
        return "aspect ratio beyond"
    return "exceeds the limit|could be decompression bomb"


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_decode_image_refuses_bombs_before_decoding(bomb_files, no_decoding, name):
    before = peak_rss_mb()
    with hang_guard(), pytest.raises(DataError, match=_expected(name)):
        decode_image(bomb_files[name])
    assert not no_decoding
    assert peak_rss_mb() - before < PEAK_GROWTH_MB


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_the_folder_reader_refuses_bombs(tmp_path, bomb_files, monkeypatch, name):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    for label, color in (("good", (10, 120, 40)), ("hostile", (200, 30, 90))):
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.new("RGB", (40, 30), color).save(tmp_path / "data" / label / "ok.png")
    bomb = tmp_path / "data" / "hostile" / bomb_files[name].name
    bomb.write_bytes(bomb_files[name].read_bytes())
    ds = load_folder("train", tmp_path / "data", image_size=32)  # statistics skip the bomb
    index = next(i for i, (path, _) in enumerate(ds.samples) if path == str(bomb))
    monkeypatch.setattr(Image, "_getdecoder", _refuse_decoding)
    before = peak_rss_mb()
    with hang_guard(), pytest.raises(DataError, match=_expected(name)):
        ds[index]
    image, label, problem = ds.decode(index)
    assert image is None and label == ds.info.classes.index("hostile")
    assert re.search(_expected(name), problem)
    assert peak_rss_mb() - before < PEAK_GROWTH_MB


def _refuse_decoding(*args, **kwargs):
    raise AssertionError("Pillow started decoding a refused image")


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_predict_refuses_bombs_in_one_line(tmp_path, bomb_files, no_decoding, capsys, name):
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_checkpoint(), ckpt)
    with hang_guard():
        code = main(["predict", str(ckpt), str(bomb_files[name])])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("resnetlab: error: ")
    assert re.search(_expected(name), err)
    assert bomb_files[name].name in err
    assert not no_decoding


# ----------------------------------------------------------------------------------------------
# Not a regular file: FIFOs, devices, folders, looping and broken links are named, never read
# ----------------------------------------------------------------------------------------------
SPECIAL = {
    "fifo": r"not a regular file \(a FIFO \(named pipe\)\); expected an image file",
    "dev-zero": r"not a regular file \(a character device\); expected an image file",
    "folder": r"not a regular file \(a folder\); expected an image file",
    "link-loop": r"symbolic link loop \(the link leads back to itself\)",
    "broken-link": r"broken symbolic link",
}
SPECIAL_READERS = ["decode_image", "folder", "predict"]
SPECIAL_CASES = len(SPECIAL) * len(SPECIAL_READERS) + 1  # + the subprocess run of data info


def _make_special(path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block until a writer came
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "folder":
        path.mkdir()
    elif kind == "link-loop":
        path.symlink_to(path.name)
    else:
        path.symlink_to(path.parent / "gone.png")


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_decode_image_names_what_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / "x.png"
    _make_special(path, kind)
    with hang_guard(5), pytest.raises(DataError, match=rf"x\.png: {SPECIAL[kind]}$"):
        decode_image(path)


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_the_folder_reader_skips_what_is_not_a_regular_file(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    for label, color in (("a", (10, 120, 40)), ("b", (200, 30, 90))):
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.new("RGB", (40, 30), color).save(tmp_path / "data" / label / "ok.png")
    _make_special(tmp_path / "data" / "b" / "x.png", kind)
    with hang_guard(10):
        with pytest.warns(UserWarning, match=rf"skipped .*b/x\.png: {SPECIAL[kind]}"):
            ds = load_folder("train", tmp_path / "data", image_size=16, test_fraction=0)
        assert [Path(p).name for p, _ in ds.samples] == ["ok.png", "ok.png"]
        with pytest.raises(DataError, match=rf"b/x\.png: {SPECIAL[kind]}"):
            load_folder("train", tmp_path / "data", image_size=16, strict=True)


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_predict_names_what_is_not_a_regular_file(tmp_path, capsys, kind):
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_checkpoint(), ckpt)
    path = tmp_path / "x.png"
    _make_special(path, kind)
    with hang_guard(30):
        code = main(["predict", str(ckpt), str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert re.fullmatch(rf"resnetlab: error: {re.escape(str(path))}: {SPECIAL[kind]}", err)


def test_data_info_warns_in_one_line_of_ours_per_bad_entry(tmp_path):
    for label, color in (("a", (10, 120, 40)), ("b", (200, 30, 90))):
        (tmp_path / "data" / label).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (40, 30), color).save(tmp_path / "data" / label / f"{k}.png")
    for kind in sorted(SPECIAL):
        _make_special(tmp_path / "data" / "a" / f"{kind}.jpg", kind)
    (tmp_path / "data" / "loop-class").symlink_to("loop-class")  # meant as a class folder
    argv = ["data", "info", "--data", "folder", "--data-dir", str(tmp_path / "data")]
    result = run_cli([*argv, "--image-size", "16"], timeout=60,
                     env={"RESNETLAB_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(SPECIAL) + 1, result.stderr  # no Python file:line, no source lines
    assert all(line.startswith("resnetlab: warning: skipped ") for line in lines)
    for kind, message in SPECIAL.items():
        assert sum(bool(re.search(rf"a/{kind}\.jpg: {message}$", x)) for x in lines) == 1, kind
    assert sum(x.endswith("data/loop-class: symbolic link loop (the link leads back to itself)")
               for x in lines) == 1  # fmt: skip
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr
    assert "train      4 images" in result.stdout  # 3 + 3 images, one of each class held out
