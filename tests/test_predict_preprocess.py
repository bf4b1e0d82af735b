"""resnetlab.evaluation.preprocess: one image file -> the tensor the network was trained on."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.errors import CheckpointError, DataError
from resnetlab.evaluation.preprocess import Preprocess

GRAY = {"name": "digits", "image_size": [16, 16], "channels": 1, "mean": [0.2], "std": [0.3]}
RGB = {
    "name": "cifar10",
    "image_size": [32, 32],
    "channels": 3,
    "mean": [0.49, 0.48, 0.45],
    "std": [0.25, 0.24, 0.26],
}


def random_image(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def test_image_of_the_input_size_is_only_normalised(tmp_path):
    img = random_image(32, 32)
    img.save(tmp_path / "a.png")
    prep = Preprocess.for_data(RGB)
    x = prep.load(tmp_path / "a.png")
    expected = (np.asarray(img, np.float32) / 255 - RGB["mean"]) / RGB["std"]  # (H, W, 3)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-5)


def test_array_data_resizes_the_shorter_side_and_crops_the_center():
    img = random_image(60, 40, seed=1)  # W x H
    prep = Preprocess.for_data(RGB)
    assert (prep.crop, prep.resize) == (32, 32)
    resized = img.resize((48, 32), Image.Resampling.BILINEAR)  # shorter side 40 -> 32
    manual = np.asarray(resized.crop((8, 0, 40, 32)), np.float32) / 255
    expected = (manual - RGB["mean"]) / RGB["std"]
    np.testing.assert_allclose(prep(img).permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_folder_data_uses_the_imagenet_test_view():
    data = {**RGB, "name": "folder", "image_size": [224, 224]}
    prep = Preprocess.for_data(data)
    assert (prep.crop, prep.resize) == (224, 256)  # §3.4 / common practice: 256, center 224
    img = random_image(300, 256, seed=2)
    manual = np.asarray(img.crop((38, 16, 262, 240)), np.float32) / 255  # no resize needed
    expected = (manual - RGB["mean"]) / RGB["std"]
    np.testing.assert_allclose(prep(img).permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_one_channel_models_get_luma(tmp_path):
    img = random_image(16, 16, seed=3)
    img.save(tmp_path / "c.png")
    x = Preprocess.for_data(GRAY).load(tmp_path / "c.png")
    luma = np.asarray(img.convert("L"), np.float32) / 255
    assert x.shape == (1, 16, 16)
    np.testing.assert_allclose(x[0].numpy(), (luma - 0.2) / 0.3, atol=1e-5)


def test_to_dict_states_the_constants():
    d = Preprocess.for_data(RGB).to_dict()
    assert d["mean"] == RGB["mean"] and d["std"] == RGB["std"]
    assert (d["resize_shorter_side"], d["center_crop"], d["color"]) == (32, [32, 32], "RGB")
    assert Preprocess.for_data(GRAY).to_dict()["color"] == "L"


def test_bad_checkpoint_data_is_refused():
    with pytest.raises(CheckpointError, match="non-square"):
        Preprocess.for_data({**RGB, "image_size": [32, 16]})
    with pytest.raises(CheckpointError, match="3 channels but 1 means"):
        Preprocess.for_data({**RGB, "mean": [0.5]})


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge image; the pixel data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"not an image at all\n", "cannot decode image"),
        ("cut.png", None, "cannot decode image"),
        ("bomb.png", png_header(12000, 12000), "exceeds the limit"),
        ("giant.png", png_header(30000, 30000), "decompression bomb"),
    ],
)
def test_unreadable_files_raise_data_error_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:  # a real PNG cut in half
        random_image(64, 64).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        Preprocess.for_data(RGB).load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_folder(tmp_path):
    prep = Preprocess.for_data(RGB)
    with pytest.raises(DataError, match=r"nope\.jpg: image file not found"):
        prep.load(tmp_path / "nope.jpg")
    with pytest.raises(DataError, match=r"not a regular file \(a folder\); expected an image"):
        prep.load(tmp_path)
