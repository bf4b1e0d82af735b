"""A property of the whole command line: generated bad input never crashes it, never writes.

Two generators, both over every command the parser has (walked from ``build_parser()``):

- argument vectors: a valid invocation of a command (``test_cli_errors.BASE``) with one of its
  options given a generated bad value: a negative, non-finite or non-numeric number, text outside
  the choices, a value given to a flag, a missing value, an unknown option, an unknown model,
  device or config key, a path to nothing, to a folder, to a damaged file, or an output path
  naming the command's own input or a run's ``checkpoints/`` (by ``..``, a symlink, a file);
- damaged files: every kind of file a command reads (checkpoint, weight file, config YAML, PNG
  and JPEG image, CIFAR pickle, SIGNS HDF5, dataset archive), truncated, bit-flipped at random
  offsets, holding tensors or arrays of the wrong dtype, or non-finite values, given to the
  commands that read it.

Every case must exit with code 2, print one line on stderr (a warning counts as a line) and no
traceback, and leave every file of the test's input folder byte-identical, with nothing added or
removed, and the output folder empty. One exception, by design: a bit flip that a format cannot
notice. A torch file's zip headers carry copies that torch does not read, so a flip there leaves
the checkpoint what it was; such a case must then give exactly the intact file's output. Formats
without a checksum over their bytes (HDF5, YAML, PNG pixel data, JPEG) cannot tell a flipped file
from another valid one, so they get only the damages that are always detectable; the CIFAR files
and the archive are checked against their md5 (set here to the fixtures' own).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import assume, event, given
from hypothesis import strategies as st
from PIL import Image

import test_cli_errors as cli_errors
from data_fixtures import cifar_batch, make_tar_gz, py2_pickle, write_cifar10
from reliability_support import (
    TRAIN_FAST,
    changes,
    cli_capture,
    fuzz,
    make_run,
    snapshot,
)
from resnetlab.data.cifar import SPECS
from resnetlab.train.checkpoint import seal
from resnetlab.train.integrity import DIGEST_ALGORITHM, tensor_digest
from resnetlab.train.weights import SAFETENSORS_DIGEST, WEIGHTS_FORMAT

FUZZ_CLI_ARGV = 40  # generated argument vectors in the quick test
FUZZ_CLI_FILES = 40  # generated damaged files in the quick test
FUZZ_CLI_ARGV_SLOW = 400  # and in the slow one
FUZZ_CLI_FILES_SLOW = 300
CASE_S = 90  # one command, at most (a bad value found late trains nothing, but loads data)

LEAVES = cli_errors.LEAVES
PATH_DESTS = {"checkpoint", "images", "runs", "resume", "config", "weights", "data_dir"}
OUTPUT_DESTS = {"out", "results_md"}
NEEDS_NO_VALUE = {"list", "data list"}  # commands without options of their own


# ----------------------------------------------------------------------------------------------
# The input folder (compared before and after every case) and the output folder (kept empty)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs of every kind under ``inputs/``; commands write into ``outputs/``."""
    base = tmp_path_factory.mktemp("fuzz-cli")
    inputs, outputs = base / "inputs", base / "outputs"
    outputs.mkdir()
    run = make_run(inputs / "run")
    (inputs / "ckdir").symlink_to(run / "checkpoints", target_is_directory=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(inputs / "img.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(inputs / "img.jpg")
    (inputs / "a-folder").mkdir()
    (inputs / "a-file").write_text("x")
    (inputs / "garbage.pt").write_bytes(b"\x00 not what the option wants \xff" * 8)
    cifar = write_cifar10(inputs / "cifar", n=4)
    archive_dir = inputs / "archive"
    archive_dir.mkdir()
    make_tar_gz(cifar, archive_dir / SPECS["cifar10"].archive)
    _write_signs(inputs / "signs")
    _write_weights(inputs)
    (inputs / "run.yaml").write_text(_config_text(CONFIG))
    return {"base": base, "inputs": inputs, "outputs": outputs, "run": run}


@pytest.fixture(autouse=True)
def _settings(world, monkeypatch):
    """The CIFAR md5 sums of the fixtures (so that an intact copy verifies), a private cache."""
    monkeypatch.setenv("RESNETLAB_CACHE", str(world["base"] / "cache"))
    spec = SPECS["cifar10"]
    folder = world["inputs"] / "cifar" / spec.folder
    md5 = {name: _md5((folder / name).read_bytes()) for name in spec.md5}
    archive = _md5((world["inputs"] / "archive" / spec.archive).read_bytes())
    monkeypatch.setitem(SPECS, "cifar10", dataclasses.replace(spec, md5=md5, archive_md5=archive))


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _write_signs(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 12), ("test", 6)):
        with h5py.File(folder / f"{split}_signs.h5", "w") as f:
            f.create_dataset(f"{split}_set_x", data=rng.integers(0, 256, (n, 8, 8, 3), np.uint8))
            f.create_dataset(f"{split}_set_y", data=rng.integers(0, 6, n))
            f.create_dataset("list_classes", data=np.arange(6))


def _write_weights(inputs: Path) -> None:
    from resnetlab.models import build_model
    from resnetlab.train.weights import save_weights

    torch.manual_seed(0)
    model = build_model("cifar_resnet", 10, 1, {"depth": 8})
    save_weights(model, inputs / "w.pt")
    save_weights(model, inputs / "w.safetensors")


# The config file a damaged copy starts from: the quick recipe, in flow style, so that a file cut
# anywhere is invalid YAML (a mapping left open).
CONFIG = {
    "model": {"name": "cifar_resnet", "overrides": {"depth": 8}},
    "data": {"name": "digits", "image_size": 8},
    "batch_size": 16,
    "iterations": 1,
    "deterministic": True,
    "eval_train_at_end": False,
    "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0001},
}
INT_KEYS = ("iterations", "batch_size", "seed", "log_every", "keep_last", "data.image_size")
FLOAT_KEYS = ("optim.lr", "optim.momentum", "optim.weight_decay", "data.val_fraction",
              "optim.label_smoothing", "schedule.gamma")  # fmt: skip


def _config_text(config: dict) -> str:
    return json.dumps(config) + "\n"  # JSON is YAML in flow style


# ----------------------------------------------------------------------------------------------
# Generated argument vectors
# ----------------------------------------------------------------------------------------------
def _parses(text: str, kind: type) -> float | None:
    try:
        return kind(text)
    except (ValueError, OverflowError):
        return None


def _bad_int() -> st.SearchStrategy[str]:
    good = st.text(max_size=8).filter(lambda t: (v := _parses(t, int)) is None or v < 0)
    return st.one_of(st.integers(max_value=-1).map(str), good, st.just("1" * 5000))


def _bad_float() -> st.SearchStrategy[str]:
    def bad(t: str) -> bool:
        v = _parses(t, float)
        return v is None or not np.isfinite(v) or v < 0

    numbers = st.floats(max_value=-1e-6, allow_nan=False).map(repr)
    return st.one_of(numbers, st.sampled_from(["nan", "inf", "-inf", "1e999", "-nan"]),
                     st.text(max_size=8).filter(bad))  # fmt: skip


def _bad_device() -> st.SearchStrategy[str]:
    """Device names this machine cannot run: torch's other device types, junk, CUDA here."""
    kinds = ["meta", "mps", "xpu", "xla", "hpu", "vulkan", "mtia", "ipu", "lazy", "gpu", "cpu"]
    if not torch.cuda.is_available():
        kinds.append("cuda")
    index = st.sampled_from(["", ":0", ":1", ":7", ":x", ":-1"])
    named = st.tuples(st.sampled_from(kinds), index).map("".join)
    return st.one_of(named, st.text(min_size=1, max_size=6)).filter(lambda t: not _runs_here(t))


def _runs_here(text: str) -> bool:
    """Whether ``--device TEXT`` names a device of this machine that resnetlab runs on."""
    if text == "auto":
        return True
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        return False
    if device.type == "cpu":
        return device.index in (None, 0)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return device.type == "cuda" and count > 0 and (device.index or 0) < count


def _bad_set() -> st.SearchStrategy[str]:
    ident = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
    bad_ints = st.sampled_from(["-1", "1.5", "abc", "[1]", "{}", ".inf", "1" * 5000, "true"])
    bad_floats = st.sampled_from([".nan", ".inf", "-.inf", "-1", "abc", "[0.1]", "null"])
    return st.one_of(
        st.text(max_size=12).filter(lambda t: "=" not in t),
        ident.map(lambda k: f"no_such.{k}=1"),
        st.tuples(st.sampled_from(INT_KEYS), bad_ints).map("=".join),
        st.tuples(st.sampled_from(FLOAT_KEYS), bad_floats).map("=".join),
    )


def _value_strategy(command: str, action) -> st.SearchStrategy[str] | None:
    """Bad values of one option, or None for options whose every value is valid."""
    kind = cli_errors._type_name(action)
    dest = action.dest
    if action.choices is not None:
        choices = {str(c) for c in action.choices}
        return st.text(max_size=10).filter(lambda t: t not in choices)
    if kind in cli_errors.NUMERIC_TYPES:
        return _bad_float() if "float" in kind else _bad_int()
    if dest in cli_errors.FREE_TEXT:
        return None
    if dest in OUTPUT_DESTS:
        outputs = ["{under_file}", "{ckpt}", "{ckdir}/x", "{run}/checkpoints/../checkpoints/new"]
        if command != "plot":  # plot's --out is a stem: ckdir.png would go beside the link
            outputs += ["{ckdir}", "{ckpt_link}"]
        return st.sampled_from(outputs)
    if dest in PATH_DESTS:
        paths = ["{missing}", "{garbage}", "{folder}", "{newline}"]
        if dest in ("config", "weights", "checkpoint"):
            paths += ["{img}", "{a_file}"]
        return st.sampled_from(paths)
    if dest == "device":
        return _bad_device()
    if dest in ("set", "sets"):
        return _bad_set()
    if dest == "model":
        return st.text("abcdefghij_0123456789", max_size=8).map(lambda t: f"no_such_{t}")
    listed = cli_errors.BAD_VALUES.get((command, dest), cli_errors.BAD_VALUES.get(dest))
    return st.sampled_from(listed) if listed else None


TARGETED = {"device": {"device"}, "output": OUTPUT_DESTS}


def _having(dests: set[str]) -> list[str]:
    """The commands with an option of one of these dests."""
    return sorted(c for c, p in LEAVES.items() if any(a.dest in dests for a in p._actions))


@st.composite
def bad_invocations(draw) -> tuple[str, list[str]]:
    """(command, argv) with one bad thing in a valid invocation."""
    command = draw(st.sampled_from(sorted(LEAVES)))
    parser = LEAVES[command]
    base = list(cli_errors.BASE[command])
    options = [a for a in cli_errors._options(parser) if a.dest != "help"]
    flags = [s for a in options for s in a.option_strings]
    how = draw(st.sampled_from(["value", "value", "value", "unknown", "missing", "flag", "device",
                                "output"]))  # fmt: skip
    if how in TARGETED:  # the options whose values found bugs, drawn more often
        command = draw(st.sampled_from(_having(TARGETED[how])))
        parser, base = LEAVES[command], list(cli_errors.BASE[command])
        options = [a for a in cli_errors._options(parser) if a.dest in TARGETED[how]]
    if how == "unknown" or command in NEEDS_NO_VALUE:
        name = draw(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=2, max_size=10))
        assume(not any(f.startswith(f"--{name}") for f in [*flags, "--debug", "--version"]))
        return command, [*command.split(), *base, f"--{name}"]
    if how == "flag":
        switches = [a for a in options if a.nargs == 0 and a.option_strings]
        assume(switches)
        action = draw(st.sampled_from(switches))
        return command, [*command.split(), *base, f"{action.option_strings[0]}={draw(st.text())}"]
    valued = [a for a in options if a.nargs != 0]
    assume(valued)
    action = draw(st.sampled_from(valued))
    if how == "missing":
        assume(action.option_strings and action.nargs not in ("?", "*"))
        return command, [*command.split(), *base, action.option_strings[0]]
    strategy = _value_strategy(command, action)
    assume(strategy is not None)
    value = draw(strategy)
    if action.dest in ("set", "sets"):  # a flag of the base wins over --set (documented)
        assume(value.split("=", 1)[0] not in _keys_of_flags(base) | SET_BY.get(command, set()))
    context = cli_errors.CONTEXT.get(action.dest, [])
    if not action.option_strings:  # a positional argument: replace the valid one
        base = [value if a == cli_errors.POSITIONAL[action.dest] else a for a in base]
        return command, [*command.split(), *base, *context]
    if action.dest == "epochs" and "--iterations" in base:  # the two are alternatives
        i = base.index("--iterations")
        base = base[:i] + base[i + 2 :]
    given_values = [value] * cli_errors._arity(action)
    return command, [*command.split(), *base, *context, action.option_strings[0], *given_values]


# Keys a command sets as flags would, besides the flags of its base invocation.
SET_BY = {"bench train": {"batch_size"}}  # --quick: batch 8


def _keys_of_flags(argv: list[str]) -> set[str]:
    """The config keys that flags in ``argv`` set (``--iterations`` -> ``iterations``)."""
    from resnetlab.train.config import FLAGS

    given = {a.removeprefix("--").replace("-", "_") for a in argv if a.startswith("--")}
    return {key for dest, key in FLAGS.items() if dest in given}


def _resolve(item: str, world) -> str:
    inputs, run = world["inputs"], world["run"]
    link = inputs / "ckpt-link.pt"
    if not link.is_symlink():
        link.symlink_to(run / "checkpoints" / "last.pt")
    return (
        item.replace("{missing}", str(inputs / "missing" / "nothing.pt"))
        .replace("{folder}", str(inputs / "a-folder"))
        .replace("{garbage}", str(inputs / "garbage.pt"))
        .replace("{under_file}", str(inputs / "a-file" / "sub"))
        .replace("{newline}", str(inputs / "two\nlines.png"))
        .replace("{a_file}", str(inputs / "a-file"))
        .replace("{img}", str(inputs / "img.png"))
        .replace("{ckpt_link}", str(link))
        .replace("{ckpt}", str(run / "checkpoints" / "last.pt"))
        .replace("{ckdir}", str(inputs / "ckdir"))
        .replace("{run}", str(run))
        .replace("{png}", str(inputs / "img.png"))
        .replace("{out}", str(world["outputs"]))
    )


def _assert_refused_and_untouched(world, argv: list[str], before: dict) -> None:
    code, _, err = cli_capture(argv, CASE_S)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit code {code} for {argv}:\n{err[-3000:]}"
    assert len(lines) == 1 and "Traceback" not in err, f"{argv}:\n{err[-3000:]}"
    assert lines[0].startswith("resnetlab") and ": error: " in lines[0], lines[0]
    assert changes(before, snapshot(world["inputs"])) == [], f"{argv} changed the inputs"
    assert list(world["outputs"].iterdir()) == [], f"{argv} left {list(world['outputs'].iterdir())}"


def _argv_property(world, examples: int) -> None:
    inputs = world["inputs"]

    @fuzz(examples)
    @given(bad_invocations())
    def case(invocation):
        event(invocation[0])
        _, argv = invocation
        argv = [_resolve(a, world) for a in argv]
        _clear(world["outputs"])
        before = snapshot(inputs)
        _assert_refused_and_untouched(world, argv, before)

    case()


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def test_generated_bad_arguments_of_every_command(world):
    _argv_property(world, FUZZ_CLI_ARGV)


@pytest.mark.slow
def test_generated_bad_arguments_of_every_command_many(world):
    _argv_property(world, FUZZ_CLI_ARGV_SLOW)


# ----------------------------------------------------------------------------------------------
# Generated damaged files
# ----------------------------------------------------------------------------------------------
# kind -> the commands that read it; each reader's argv has {f} for the damaged file or folder.
READERS = {
    "predict": ["predict", "{f}", "{png}"],
    "eval": ["eval", "{f}", "--out", "{out}/eval"],
    "export": ["export", "{f}", "--format", "torchscript", "--out", "{out}/m.pt"],
    "train --weights": ["train", *TRAIN_FAST, "--iterations", "1", "--weights", "{f}",
                        "--out", "{out}/run"],
    "train --resume": ["train", "--resume", "{f}"],
    "train --config": ["train", "--config", "{f}", "--out", "{out}/run"],
    "predict IMAGE": ["predict", "{ckpt}", "{f}"],
    "data info": ["data", "info", "--data", "{data}", "--data-dir", "{f}"],
    "train --data": ["train", *TRAIN_FAST, "--iterations", "1", "--data", "{data}",
                     "--data-dir", "{f}", "--out", "{out}/run"],
}  # fmt: skip
KINDS = {
    "checkpoint": ("predict", "eval", "export", "train --weights", "train --resume"),
    "weights .pt": ("train --weights",),
    "weights .safetensors": ("train --weights",),
    "config": ("train --config",),
    "png": ("predict IMAGE",),
    "jpeg": ("predict IMAGE",),
    "cifar": ("data info", "train --data"),
    "signs": ("data info", "train --data"),
    "archive": ("data info",),
}
FLIPS = ("checkpoint", "weights .pt", "weights .safetensors", "png", "cifar", "archive")
NOT_FLIPPED = ("train --resume",)  # a flip torch does not notice would resume, and write


class Damaged:
    """One generated case: what to write where, and what the command must do.

    Attributes:
        kind, reader: the file's kind and the command that reads it.
        edit: what was done to the file, for hypothesis' report.
        files: relative path under ``inputs/case`` -> bytes.
        target: the path given to the command, relative to ``inputs/case``.
        extra: more options (``--no-verify``).
        may_be_intact: a flip the format cannot notice: then the intact file's output instead.
    """

    def __init__(self, kind, reader, edit, files, target, extra=(), may_be_intact=False):
        self.kind, self.reader, self.edit, self.files = kind, reader, edit, files
        self.target, self.extra, self.may_be_intact = target, tuple(extra), may_be_intact

    def __repr__(self) -> str:  # the bytes are too long to print
        return f"<{self.kind} via {self.reader}: {self.edit}>"


class Intact(dict):
    """The intact files' bytes, by kind (printed short in hypothesis' reports)."""

    def __repr__(self) -> str:
        return "<intact files>"


@pytest.fixture(scope="module")
def intact(world):
    """The intact files' bytes the damages start from."""
    inputs, run = world["inputs"], world["run"]
    ckpt_bytes = (run / "checkpoints" / "last.pt").read_bytes()
    spec = SPECS["cifar10"]
    return Intact(
        {
            "checkpoint": ckpt_bytes,
            "weights .pt": (inputs / "w.pt").read_bytes(),
            "weights .safetensors": (inputs / "w.safetensors").read_bytes(),
            "png": (inputs / "img.png").read_bytes(),
            "jpeg": (inputs / "img.jpg").read_bytes(),
            "cifar": {n: (inputs / "cifar" / spec.folder / n).read_bytes() for n in spec.md5},
            "signs": {
                s: (inputs / "signs" / f"{s}_signs.h5").read_bytes() for s in ("train", "test")
            },
            "archive": (inputs / "archive" / spec.archive).read_bytes(),
            "config.yaml": (run / "config.yaml").read_bytes(),
        }
    )


def _to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _flip(draw, data: bytes, lo: int = 0, hi: int | None = None) -> tuple[bytes, str]:
    hi = len(data) if hi is None else hi
    where = st.tuples(st.integers(lo, hi - 1), st.integers(0, 7))
    flips = draw(st.lists(where, min_size=1, max_size=16, unique=True))  # none undoes another
    out = bytearray(data)
    for i, bit in flips:
        out[i] ^= 1 << bit
    return bytes(out), f"bits flipped {flips}"


def _cut(draw, data: bytes, lo: int, hi: int) -> tuple[bytes, str]:
    at = draw(st.integers(lo, hi))
    return data[:at], f"truncated at {at} of {len(data)}"


def _damage_state(draw, state: dict[str, torch.Tensor]) -> str:
    """Change ``state`` in place: a wrong dtype, non-finite values or a negative BN variance."""
    how = draw(st.sampled_from(["dtype", "non-finite", "negative variance"]))
    floats = sorted(k for k, v in state.items() if v.is_floating_point())
    if how == "dtype":
        key = draw(st.sampled_from(sorted(state)))
        wrong = (
            [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]
            if state[key].is_floating_point()
            else [torch.float32, torch.float64, torch.complex64]
        )
        dtype = draw(st.sampled_from(wrong))
        state[key] = state[key].to(dtype)
        return f"{key} as {dtype}"
    if how == "non-finite":
        key = draw(st.sampled_from(floats))
        flat = state[key].reshape(-1)
        i = draw(st.integers(0, flat.numel() - 1))
        flat[i] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        return f"{key}[{i}] = {flat[i].item()}"
    key = draw(st.sampled_from([k for k in floats if k.endswith("running_var")]))
    flat = state[key].reshape(-1)
    i = draw(st.integers(0, flat.numel() - 1))
    flat[i] = -flat[i].abs() - 1e-3
    return f"{key}[{i}] negative"


def _torch_file(draw, kind: str, intact_bytes: bytes, reader: str) -> tuple[bytes, str, bool]:
    """(bytes, edit, may be intact) of a damaged checkpoint or weight file."""
    hows = ["truncate", "state", "state"] + (["flip", "flip"] if reader not in NOT_FLIPPED else [])
    if kind == "checkpoint":
        hows.append("mean/std")
    how = draw(st.sampled_from(hows))
    if how == "truncate":
        return (*_cut(draw, intact_bytes, 0, len(intact_bytes) - 1), False)
    if how == "flip":
        return (*_flip(draw, intact_bytes), True)
    if kind == "weights .safetensors":
        from safetensors.torch import load, save

        state = load(intact_bytes)
        edit = _damage_state(draw, state)
        digest = {"format": "pt", SAFETENSORS_DIGEST: tensor_digest(state)}
        return save(state, metadata=digest), edit, False
    obj = torch.load(io.BytesIO(intact_bytes), weights_only=True)
    if how == "mean/std":
        key = draw(st.sampled_from(["mean", "std"]))
        bad = [float("nan"), float("inf")] + ([0.0, -0.5] if key == "std" else [float("-inf")])
        obj["data"][key][0] = draw(st.sampled_from(bad))
        return _to_bytes(seal(obj)), f"data.{key}[0] = {obj['data'][key][0]}", False
    if kind == "checkpoint":
        edit = _damage_state(draw, obj["state"]["model"])
        return _to_bytes(seal(obj)), edit, False
    assert obj["format"] == WEIGHTS_FORMAT
    edit = _damage_state(draw, obj["state_dict"])
    obj["digest"] = {DIGEST_ALGORITHM: tensor_digest(obj["state_dict"])}
    return _to_bytes(obj), edit, False


def _config_file(draw) -> tuple[bytes, str]:
    """A config that is always wrong: cut short, or one value or key that no run can take."""
    text = _config_text(CONFIG)
    how = draw(st.sampled_from(["truncate", "value", "value", "unknown key", "tag", "bytes"]))
    if how == "truncate":
        data, edit = _cut(draw, text.encode(), 1, len(text) - 2)  # "}" cut: a mapping left open
        return data, edit
    if how == "bytes":
        at = draw(st.integers(0, len(text)))
        byte = draw(st.sampled_from([b"\x00", b"\xff", b"\xc3(", b"\x1b"]))
        return text.encode()[:at] + byte + text.encode()[at:], f"{byte!r} inserted at {at}"
    config = json.loads(text)
    if how == "unknown key":
        section = draw(st.sampled_from([None, "model", "data", "optim"]))
        name = "no_such_" + draw(st.text("abcxyz", min_size=1, max_size=4))
        (config if section is None else config[section])[name] = 1
        return _config_text(config).encode(), f"unknown key {section}.{name}"
    key = draw(st.sampled_from(INT_KEYS + FLOAT_KEYS))
    if how == "tag":
        token = "!!python/object/apply:os.system [echo hi]"
    else:
        ints = ["-1", "1.5", '"abc"', "[1]", "{a: 1}", "true", "1" * 5000]
        floats = [".nan", ".inf", "-.inf", "-0.5", '"abc"', "[0.1]", "true"]
        token = draw(st.sampled_from(ints if key in INT_KEYS else floats))
    node = config
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = "@@VALUE@@"
    text = _config_text(config).replace('"@@VALUE@@"', token)
    return text.encode(), f"{key}: {token[:20]}"


def _image_file(draw, kind: str, data: bytes) -> tuple[bytes, str, bool]:
    how = draw(st.sampled_from(["truncate", "truncate", "header flip", "random"]))
    if how == "truncate":  # within the first half: pixels are missing, whatever the format
        return (*_cut(draw, data, 0, len(data) // 2), False)
    if how == "header flip":  # PNG: signature and IHDR (CRC-checked); JPEG: its SOI marker
        return (*_flip(draw, data, 0, 33 if kind == "png" else 2), True)
    noise = draw(st.binary(min_size=1, max_size=2048))
    assume(not noise.startswith((b"\x89PNG", b"\xff\xd8", b"GIF", b"BM", b"II", b"MM", b"RIFF")))
    return noise, f"{len(noise)} random bytes", False


def _cifar_files(draw, files: dict[str, bytes]) -> tuple[dict[str, bytes], str, tuple[str, ...]]:
    spec = SPECS["cifar10"]
    name = draw(st.sampled_from(sorted(files)))
    how = draw(st.sampled_from(["flip", "truncate", "dtype", "labels"]))
    out = dict(files)
    if how == "flip":  # verified: the md5 notices any flip
        out[name], edit = _flip(draw, files[name])
        return out, f"{name}: {edit}", ()
    if how == "truncate":
        out[name], edit = _cut(draw, files[name], 0, len(files[name]) - 1)
        return out, f"{name}: {edit}", ("--no-verify",)
    batches = [n for n in sorted(files) if n != spec.meta]
    name = draw(st.sampled_from(batches))
    seed = 0 if name == "test_batch" else int(name.rsplit("_", 1)[1])
    batch = cifar_batch(4, seed=seed)
    if how == "dtype":
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint16]))
        data = batch[b"data"].astype(dtype)
        if data.dtype.kind == "f" and draw(st.booleans()):
            data[0, draw(st.integers(0, 3071))] = draw(st.sampled_from([np.nan, np.inf]))
        batch[b"data"] = data
        edit = f"data as {np.dtype(dtype).name}"
    else:
        bad = draw(st.sampled_from([10, -1, 2.5, "3", None]))
        batch[b"labels"] = [*batch[b"labels"][:-1], bad]
        edit = f"a label {bad!r}"
    out[name] = py2_pickle(batch)
    return out, f"{name}: {edit}", ("--no-verify",)


def _signs_files(draw, files: dict[str, bytes]) -> tuple[dict[str, bytes], str]:
    split = draw(st.sampled_from(["train", "test"]))
    name = f"{split}_signs.h5"
    out = {f"{s}_signs.h5": b for s, b in files.items()}
    how = draw(st.sampled_from(["truncate", "dtype", "non-finite", "shape"]))
    if how == "truncate":
        out[name], edit = _cut(draw, out[name], 0, len(out[name]) - 1)
        return out, f"{name}: {edit}"
    rng = np.random.default_rng(2)
    n = 12 if split == "train" else 6
    x = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.uint8)
    y = rng.integers(0, 6, n)
    if how == "dtype":
        which = draw(st.sampled_from(["x", "y"]))
        if which == "x":
            x = x.astype(draw(st.sampled_from([np.float32, np.float64, np.int16, np.int64])))
        else:
            y = y.astype(np.float32) + 0.5
        edit = f"{which} of another dtype"
    elif how == "non-finite":
        x = x.astype(np.float32)
        x[0, 0, 0, 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        edit = "x non-finite"
    else:
        x = x[..., :1]
        edit = "x with one channel"
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset(f"{split}_set_x", data=x)
        f.create_dataset(f"{split}_set_y", data=y)
        f.create_dataset("list_classes", data=np.arange(6))
    out[name] = buf.getvalue()
    return out, f"{name}: {edit}"


@st.composite
def damaged_files(draw, intact) -> Damaged:
    kind = draw(st.sampled_from(sorted(KINDS)))
    reader = draw(st.sampled_from(KINDS[kind]))
    spec = SPECS["cifar10"]
    if kind in ("checkpoint", "weights .pt", "weights .safetensors"):
        data, edit, benign = _torch_file(draw, kind, intact[kind], reader)
        suffix = ".safetensors" if kind.endswith("safetensors") else ".pt"
        if reader == "train --resume":
            files = {"resume/config.yaml": intact["config.yaml"],
                     "resume/checkpoints/last.pt": data}  # fmt: skip
            return Damaged(kind, reader, edit, files, "resume")
        return Damaged(kind, reader, edit, {f"file{suffix}": data}, f"file{suffix}", (), benign)
    if kind == "config":
        data, edit = _config_file(draw)
        return Damaged(kind, reader, edit, {"run.yaml": data}, "run.yaml")
    if kind in ("png", "jpeg"):
        data, edit, benign = _image_file(draw, kind, intact[kind])
        name = f"img.{'png' if kind == 'png' else 'jpg'}"
        return Damaged(kind, reader, edit, {name: data}, name, (), benign)
    if kind == "cifar":
        files, edit, extra = _cifar_files(draw, intact["cifar"])
        files = {f"cifar/{spec.folder}/{n}": b for n, b in files.items()}
        return Damaged(kind, reader, edit, files, "cifar", extra)
    if kind == "signs":
        files, edit = _signs_files(draw, intact["signs"])
        return Damaged(kind, reader, edit, {f"signs/{n}": b for n, b in files.items()}, "signs")
    data = intact["archive"]
    if draw(st.booleans()):
        data, edit = _flip(draw, data)
        extra: tuple[str, ...] = ()
    else:  # cut within the members' data: a cut trailer alone would lose nothing
        data, edit = _cut(draw, data, 0, len(data) * 9 // 10)
        extra = ("--no-verify",)
    return Damaged(kind, reader, edit, {f"archive/{spec.archive}": data}, "archive", extra)


def _reader_argv(world, case: Damaged, target: Path) -> list[str]:
    data = {"cifar": "cifar10", "archive": "cifar10", "signs": "signs"}.get(case.kind, "")
    argv = [
        a.replace("{f}", str(target))
        .replace("{data}", data)
        .replace("{ckpt}", str(world["run"] / "checkpoints" / "last.pt"))
        .replace("{png}", str(world["inputs"] / "img.png"))
        .replace("{out}", str(world["outputs"]))
        for a in READERS[case.reader]
    ]
    return [*argv, *case.extra]


def _outcome(world, argv: list[str], target: Path) -> tuple[int, str]:
    """(exit code, what the command answered): stdout with the file's path made generic, or a
    run's final errors."""
    code, out, _ = cli_capture(argv, CASE_S)
    summary = world["outputs"] / "run" / "summary.json"
    if code == 0 and summary.exists():
        out = json.dumps(json.loads(summary.read_text())["final"])
    return code, out.replace(str(target), "{f}")


def _write_case(world, case: Damaged) -> Path:
    folder = world["inputs"] / "case"
    if folder.exists():
        shutil.rmtree(folder)
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder / case.target


def _files_property(world, intact, examples: int) -> None:
    baselines: dict[tuple[str, str], tuple[int, str]] = {}

    @fuzz(examples)
    @given(damaged_files(intact))
    def case(damaged: Damaged):
        event(f"{damaged.kind} via {damaged.reader}")
        target = _write_case(world, damaged)
        argv = _reader_argv(world, damaged, target)
        _clear(world["outputs"])
        before = snapshot(world["inputs"])
        if not damaged.may_be_intact:
            _assert_refused_and_untouched(world, argv, before)
            return
        code, answer = _outcome(world, argv, target)
        event(f"a flip {'left the file intact' if code == 0 else 'was noticed'}")
        if code == 0:  # the flip changed nothing the format reads: the intact file's answer
            key = (damaged.kind, damaged.reader)
            if key not in baselines:
                copy = _intact_copy(world, damaged)
                _clear(world["outputs"])
                baselines[key] = _outcome(world, _reader_argv(world, damaged, copy), copy)
            assert (code, answer) == baselines[key], f"{damaged}: a different answer"
            assert changes(before, snapshot(world["inputs"])) == []
            return
        _clear(world["outputs"])
        _assert_refused_and_untouched(world, argv, before)  # and again, checked in full

    case()


def _intact_copy(world, damaged: Damaged) -> Path:
    """The intact file of ``damaged``'s kind, at a path of the same name."""
    # outside the inputs compared before and after; one folder per kind (two are "file.pt")
    folder = world["base"] / "intact" / damaged.kind.replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    source = {
        "checkpoint": world["run"] / "checkpoints" / "last.pt",
        "weights .pt": world["inputs"] / "w.pt",
        "weights .safetensors": world["inputs"] / "w.safetensors",
        "png": world["inputs"] / "img.png",
        "jpeg": world["inputs"] / "img.jpg",
    }[damaged.kind]
    path = folder / Path(damaged.target).name
    if not path.exists():
        shutil.copyfile(source, path)
    return path


def test_generated_damaged_files_of_every_reader(world, intact):
    _files_property(world, intact, FUZZ_CLI_FILES)


@pytest.mark.slow
def test_generated_damaged_files_of_every_reader_many(world, intact):
    _files_property(world, intact, FUZZ_CLI_FILES_SLOW)
