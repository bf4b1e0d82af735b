"""Fuzzing the checkpoint and weight-file readers: broken files give a clean error, nothing else.

"Clean" means a result or a ``UserError`` (``CheckpointError``/``ConfigError``); any other
exception, a read longer than ``CASE_SECONDS`` or peak-memory growth beyond ``RSS_BOUND_MB``
fails the test. Three kinds of input: mutations of a valid file (edits focused on the zip
headers, the pickle and the central directory), random bytes, and valid pickles whose fields hold
the wrong things (a checkpoint that loads but lies about its model).
"""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reliability_support import (
    FUZZ_MUTATED,
    FUZZ_RANDOM,
    fuzz,
    fuzz_file,
    mutations,
    random_bytes,
    read_cleanly,
    tiny_checkpoint,
)
from resnetlab.evaluation.preprocess import Preprocess
from resnetlab.models import build_model
from resnetlab.train.checkpoint import seal
from resnetlab.train.weights import load_weights, model_from_checkpoint, save_weights

FUZZ_FIELDS = 100  # valid pickles with one field replaced or removed

# Where a field of a checkpoint can be replaced by junk or removed.
FIELDS = [
    (),
    ("format",),
    ("model",),
    ("model", "name"),
    ("model", "overrides"),
    ("model", "num_classes"),
    ("model", "in_channels"),
    ("state",),
    ("state", "model"),
    ("data",),
    ("data", "classes"),
    ("data", "image_size"),
    ("data", "channels"),
    ("data", "mean"),
    ("data", "std"),
    ("config",),
    ("progress",),
    ("progress", "iteration"),
    # constructor arguments a damaged or hand-edited checkpoint could pass to the model builder
    *(
        ("model", "overrides", key)
        for key in (
            "depth",
            "widths",
            "layers",
            "stem",
            "block",
            "shortcut",
            "residual",
            "preact",
            "in_channels",
            "num_classes",
            "stride_at",
            "zero_init_residual",
        )
    ),
]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["cifar_resnet", "resnet20", "resnet50_signs", "depth", "A", "B"])
)
_junk = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _tiny():
    torch.manual_seed(0)
    return build_model("cifar_resnet", 10, 1, {"depth": 8})


def _checkpoint() -> dict:
    ckpt = tiny_checkpoint()
    ckpt["state"]["model"] = _tiny().state_dict()
    return seal(ckpt)


def _to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _zip_focus(data: bytes) -> list[tuple[int, int]]:
    """The byte ranges of a torch zip file that hold structure, not tensor data."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
        pkl = next(i for i in infos if i.filename.endswith("data.pkl"))
        directory = min(i.header_offset for i in infos if "/data/" in i.filename)
    return [
        (0, pkl.header_offset + 128 + pkl.file_size),
        (len(data) - 8192, len(data)),
        (directory, directory + 512),
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-ckpt")
    valid = _to_bytes(_checkpoint())
    save_weights(_tiny(), folder / "w.safetensors")
    st_bytes = (folder / "w.safetensors").read_bytes()
    header = 8 + int.from_bytes(st_bytes[:8], "little")
    return {
        "folder": folder,
        "ckpt": (valid, _zip_focus(valid)),
        "safetensors": (st_bytes, [(0, header)]),
    }


def _read_checkpoint(path) -> None:
    """What ``resnetlab predict`` reads: the model, then the preprocessing of its data."""
    _, ckpt = model_from_checkpoint(path)
    Preprocess.for_data(ckpt["data"])


def _read_weights(path) -> None:
    load_weights(_tiny(), path)


READERS = {
    "checkpoint": ("ckpt", ".pt", _read_checkpoint),
    "weights-pt": ("ckpt", ".pt", _read_weights),
    "weights-safetensors": ("safetensors", ".safetensors", _read_weights),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_mutated_files_give_clean_errors(files, reader):
    key, suffix, read = READERS[reader]
    valid, focus = files[key]
    path = files["folder"] / f"mutated-{reader}{suffix}"
    fuzz_file(read, path, mutations(valid, focus), FUZZ_MUTATED)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_random_bytes_give_clean_errors(files, reader):
    _, suffix, read = READERS[reader]
    path = files["folder"] / f"random-{reader}{suffix}"

    fuzz_file(read, path, random_bytes(), FUZZ_RANDOM)


def _replace(ckpt: dict, field: tuple[str, ...], value, remove: bool) -> object:
    if not field:
        return value
    node = ckpt
    for key in field[:-1]:
        node = node[key]
    if remove:
        node.pop(field[-1], None)
    else:
        node[field[-1]] = value
    return ckpt


def test_checkpoints_with_wrong_fields_give_clean_errors(files):
    path = files["folder"] / "fields.pt"
    state = _tiny().state_dict()

    @fuzz(FUZZ_FIELDS)
    @given(st.sampled_from(FIELDS), _junk, st.booleans())
    def case(field, value, remove):
        ckpt = _checkpoint()
        ckpt["state"]["model"] = state
        path.write_bytes(_to_bytes(_replace(ckpt, field, value, remove and bool(field))))
        read_cleanly(_read_checkpoint, path)
        read_cleanly(_read_weights, path)

    case()
