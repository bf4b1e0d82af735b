"""Decompression bombs: images that declare (or decode to) enormous sizes are refused before any
pixel is decoded, by the image reader, the folder dataset and ``resnetlab predict``.

"Before decoding" is checked, not assumed: Pillow's decoder factory is replaced by a spy that
fails the test if it is ever called for a bomb.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
import torch
from PIL import Image

from reliability_support import hang_guard, peak_rss_mb, tiny_checkpoint
from resnetlab.cli import main
from resnetlab.data.folder import load_folder
from resnetlab.data.images import MAX_ASPECT, MAX_PIXELS, decode_image
from resnetlab.errors import DataError


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
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
}
READERS = ["decode_image", "folder", "predict"]
CASES = len(BOMBS) * len(READERS)
PEAK_GROWTH_MB = 100  # a refused bomb must not allocate its pixels (144 M+ of them)


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for name, make in BOMBS.items():
        suffix = ".jpg" if name.startswith("jpeg") else ".png"
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
