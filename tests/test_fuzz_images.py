"""Fuzzing the image reader (``decode_image``) and the views built from it.

Mutated PNG and JPEG files (edits focused on their headers) and random bytes give an RGB image or
a ``DataError``; nothing else, no hang, bounded memory. A decoded image then goes through the
evaluation view (resize + center crop), as ``FolderDataset`` and ``resnetlab predict`` do.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from reliability_support import (
    FUZZ_MUTATED,
    FUZZ_RANDOM,
    fuzz_file,
    mutations,
    random_bytes,
)
from resnetlab.data.images import decode_image
from resnetlab.data.transforms import ImageNetRecipe, eval_view

RECIPE = ImageNetRecipe.scaled(32)  # small views keep the cases fast; the code path is the same


def _image(fmt: str, mode: str) -> bytes:
    img = Image.linear_gradient("L").resize((24, 20)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


# (format, mode, bytes that hold the structure: headers, palette, tables)
FILES = {
    "png-rgb": ("PNG", "RGB", 64),
    "png-palette": ("PNG", "P", 900),
    "png-gray": ("PNG", "L", 64),
    "jpeg-rgb": ("JPEG", "RGB", 700),
    "jpeg-gray": ("JPEG", "L", 400),
}


def _decode_and_view(path) -> None:
    img = decode_image(path)
    assert img.mode == "RGB" and min(img.size) >= 1
    view = eval_view(img, RECIPE)
    assert view.size == (RECIPE.crop, RECIPE.crop)


@pytest.mark.parametrize("name", sorted(FILES))
def test_mutated_images_give_clean_errors(tmp_path, name):
    fmt, mode, header = FILES[name]
    valid = _image(fmt, mode)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(valid)
    _decode_and_view(path)  # the valid file reads
    fuzz_file(
        _decode_and_view,
        path,
        mutations(valid, [(0, header), (len(valid) - 32, len(valid))]),
        FUZZ_MUTATED,
    )


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_random_bytes_give_clean_errors(tmp_path, suffix):
    path = tmp_path / f"random.{suffix}"
    signature = b"\x89PNG\r\n\x1a\n" if suffix == "png" else b"\xff\xd8\xff"

    fuzz_file(_decode_and_view, path, random_bytes(2048).map(lambda b: signature + b), FUZZ_RANDOM)
