"""Every option of every ``resnetlab`` command, given a wrong type, range or path: exactly one
line on stderr and exit code 2, never a traceback, never a hang.

The cases come from the parser itself (``resnetlab.cli.build_parser``), walked down to every leaf
command:

- argparse-level, for every option: a non-number for numeric options, a value outside the
  choices, a missing value, a value given to a flag, and an unknown option;
- run-time, for every option argparse cannot judge: ``-1``, ``nan`` and ``inf`` for numbers,
  and for named options the wrong values of ``BAD_VALUES`` (missing paths, folders where files
  go, garbage files, outputs under a regular file, unknown names), each added to ``BASE``, a
  valid invocation of the command that finishes in seconds.

``test_every_option_is_covered`` fails when a command or option appears that these tables do not
cover yet: add it to ``BASE`` / ``BAD_VALUES`` (or, for free text, to ``FREE_TEXT``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import pytest
import torch
from PIL import Image

from reliability_support import TRAIN_FAST, hang_guard
from resnetlab.cli import build_parser, main

NUMERIC_TYPES = ("int", "float", "positive_int", "positive_float")
# Placeholders, replaced by paths in the test's folders.
MISSING, FOLDER, GARBAGE, UNDER_FILE, NEWLINE = (
    "{missing}", "{folder}", "{garbage}", "{under_file}", "{newline}",
)  # fmt: skip

# A valid invocation of each leaf command that ends in seconds (so that a wrong value the command
# fails to refuse shows up as a wrong exit code, not as a long job). {out} is a fresh folder.
BASE = {
    "summary": ["resnet20"],
    "list": [],
    "train": [*TRAIN_FAST, "--iterations", "1", "--out", "{out}/run"],
    "data list": [],
    "data info": [],
    "data download": ["--data-dir", "{out}/dl", "--url", "http://127.0.0.1:9/x.tar.gz"],
    "eval": ["{ckpt}", "--out", "{out}/eval"],
    "predict": ["{ckpt}", "{png}"],
    "export": ["{ckpt}", "--format", "torchscript", "--out", "{out}/model.pt"],
    "plot": ["{run}", "--out", "{out}/plots"],
    "bench train": ["--quick", "--model", "resnet20"],
    "bench infer": ["--quick", "--model", "resnet20"],
    "bench peak": ["--quick"],
    "embed": ["{ckpt}", "--out", "{out}/features.npy"],
    "explain": ["{ckpt}", "{png}", "--out", "{out}/explain"],
    "experiment degradation": ["--depths", "8", "--data", "digits", "--iterations", "1",
                               "--image-size", "8", "--out", "{out}/exp"],
    "experiment cifar-table": ["--depths", "8", "--data", "digits", "--iterations", "1",
                               "--image-size", "8", "--results-md", "{out}/R.md",
                               "--out", "{out}/exp"],
    "experiment shortcuts": ["--depth", "8", "--data", "digits", "--iterations", "1",
                             "--image-size", "8", "--out", "{out}/exp"],
    "experiment identity": ["--shallow", "8", "--deep", "14", "--data", "digits",
                            "--iterations", "1", "--image-size", "8", "--out", "{out}/exp"],
    "experiment lesson": ["--depths", "8", "14", "--shallow", "8", "--deep", "14", "--data",
                          "digits", "--iterations", "1", "--identity-iterations", "1",
                          "--image-size", "8", "--out", "{out}/exp"],
    "experiment signal": ["--depths", "8", "--norms", "bn", "--batch-size", "8",
                          "--image-size", "8", "--out", "{out}/exp"],
    "experiment shattered": ["--depths", "8", "--points", "8", "--batch-size", "8",
                             "--image-size", "8", "--out", "{out}/exp"],
    "experiment lesion": ["--depths", "8", "--data", "digits", "--iterations", "1",
                          "--image-size", "8", "--batch-size", "8", "--test-images", "16",
                          "--draws", "1", "--path-samples", "1", "--path-images", "4",
                          "--out", "{out}/exp"],
    "experiment landscape": ["--depths", "8", "--data", "digits", "--iterations", "1",
                             "--image-size", "8", "--batch-size", "8", "--grid", "3",
                             "--subset", "8", "--out", "{out}/exp"],
}  # fmt: skip

# Wrong values of options argparse cannot judge, by the option's dest (the same meaning in every
# command that has it); ("command", dest) keys override.
BAD_VALUES = {
    "model": ["no_such_model"],
    "data_dir": [MISSING, GARBAGE],  # with --data cifar10 (added below): digits needs no folder
    "weights": [MISSING, FOLDER, GARBAGE],
    "freeze": ["head"],
    "layer": ["no_such_layer"],
    "class_": ["no_such_class", "10"],
    "config": [MISSING, FOLDER, GARBAGE],
    "set": ["no-equals-sign", "no.such.key=1", "epochs=many"],
    "sets": ["no-equals-sign", "no.such.key=1", "epochs=many"],
    "device": ["gpu7", "cuda:x"],
    "out": [UNDER_FILE],
    "results_md": [UNDER_FILE],
    "resume": [MISSING, GARBAGE],
    "checkpoint": [MISSING, FOLDER, GARBAGE, NEWLINE],
    "images": [MISSING, FOLDER, GARBAGE, NEWLINE],
    "runs": [MISSING, FOLDER],
    "url": ["not-a-url"],
    "variants": ["no_such_variant"],
    "options": ["Z"],
    "beyond": [GARBAGE],  # a file where a folder belongs (a missing folder is named as not run)
    "norms": ["ln"],
    ("bench train", "data"): ["no_such_data"],
    ("eval", "model"): ["resnet20"],  # the checkpoint holds cifar_resnet
    ("predict", "model"): ["resnet20"],
    ("export", "model"): ["resnet20"],
    ("embed", "model"): ["resnet20"],
    ("explain", "model"): ["resnet20"],
}
FREE_TEXT = {"pattern", "title"}  # any text is a valid value
NUMBER_VALUES = {"int": ["-1"], "float": ["-1", "nan", "inf"]}
# Options whose range check needs a context the base invocation does not give.
CONTEXT = {"data_dir": ["--data", "cifar10"]}
# Positional arguments: the wrong value replaces this item of the base invocation.
POSITIONAL = {"checkpoint": "{ckpt}", "images": "{png}", "runs": "{run}", "model": "resnet20"}


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(prefix), parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, (*prefix, name))


LEAVES = dict(_leaves(build_parser()))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _type_name(action: argparse.Action) -> str | None:
    return getattr(action.type, "__name__", None)


def _flag(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def _arity(action: argparse.Action) -> int:
    return action.nargs if isinstance(action.nargs, int) else 1


def _argparse_cases() -> list[tuple[str, list[str]]]:
    """(id, argv) of wrong values argparse itself must refuse."""
    cases = []
    for command, parser in LEAVES.items():
        cmd = command.split()
        cases.append((f"{command} --no-such-option", [*cmd, "--no-such-option"]))
        for action in _options(parser):
            if not action.option_strings:
                continue
            flag = action.option_strings[0]
            if action.nargs == 0:
                cases.append((f"{command} {flag}=1", [*cmd, f"{flag}=1"]))
                continue
            cases.append((f"{command} {flag} <nothing>", [*cmd, flag]))
            if action.choices is not None:
                cases.append((f"{command} {flag} bogus", [*cmd, flag, "__bogus__"]))
            if _type_name(action) in NUMERIC_TYPES:
                cases.append((f"{command} {flag} x", [*cmd, flag, *["x"] * _arity(action)]))
    return cases


def _runtime_cases() -> list[tuple[str, str, str, list[str]]]:
    """(id, command, dest, argv tail) of wrong values the commands must refuse at run time."""
    cases = []
    for command, parser in LEAVES.items():
        for action in _options(parser):
            if action.choices is not None or action.nargs == 0 or action.dest in FREE_TEXT:
                continue
            kind = _type_name(action)
            if kind in NUMERIC_TYPES:
                values = NUMBER_VALUES["float" if "float" in kind else "int"]
            else:
                values = BAD_VALUES.get((command, action.dest), BAD_VALUES.get(action.dest, []))
            for value in values:
                given = [value] * _arity(action)
                tail = [action.option_strings[0], *given] if action.option_strings else given
                ident = f"{command} {_flag(action)} {value!r}"
                cases.append((ident, command, action.dest, [*CONTEXT.get(action.dest, []), *tail]))
    return cases


ARGPARSE_CASES = _argparse_cases()
RUNTIME_CASES = _runtime_cases()
CASES = len(ARGPARSE_CASES) + len(RUNTIME_CASES)


def test_every_option_is_covered():
    assert sorted(LEAVES) == sorted(BASE), "add the new command to BASE"
    runtime = {(command, dest) for _, command, dest, _ in RUNTIME_CASES}
    for command, parser in LEAVES.items():
        for action in _options(parser):
            judged_by_argparse = action.choices is not None or action.nargs == 0
            if judged_by_argparse or action.dest in FREE_TEXT:
                continue
            assert (command, action.dest) in runtime, (
                f"`resnetlab {command} {_flag(action)}` has no wrong values: add its dest "
                f"{action.dest!r} to BAD_VALUES (or to FREE_TEXT if any text is valid)"
            )


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
        hang_guard(120),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse exits by itself
            code = exc.code
    return code, err.getvalue()


def _assert_one_line_exit_2(argv: list[str], code: int, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit code {code} for {argv}; stderr:\n{err[-2000:]}"
    assert len(lines) == 1, f"{len(lines)} lines on stderr for {argv}:\n{err[-2000:]}"
    assert lines[0].startswith("resnetlab") and ": error: " in lines[0], lines[0]


@pytest.mark.parametrize("argv", [c[1] for c in ARGPARSE_CASES], ids=[c[0] for c in ARGPARSE_CASES])
def test_argparse_refuses_wrong_values_in_one_line(argv):
    _assert_one_line_exit_2(argv, *_run(argv))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run folder and checkpoint (2 steps of a ResNet-8 on 8x8 digits) and an image."""
    folder = tmp_path_factory.mktemp("cli")
    run = folder / "run"
    code, err = _run(["train", *TRAIN_FAST, "--iterations", "2", "--out", str(run)])
    assert code == 0, err
    png = folder / "digit.png"
    Image.new("L", (8, 8), 128).save(png)
    return run, png


def _resolve(item: str, tmp_path, trained) -> str:
    run, png = trained
    garbage = tmp_path / "garbage.pt"
    if not garbage.exists():  # the command may have made it read-only, or a folder of it
        garbage.write_bytes(b"\x00 not what the option wants \xff" * 8)
        (tmp_path / "a-file").write_text("x")
        (tmp_path / "a-folder").mkdir()
    return (
        item.replace(MISSING, str(tmp_path / "missing" / "nothing.pt"))
        .replace(FOLDER, str(tmp_path / "a-folder"))
        .replace(GARBAGE, str(garbage))
        .replace(UNDER_FILE, str(tmp_path / "a-file" / "sub"))
        .replace(NEWLINE, str(tmp_path / "two\nlines.png"))
        .replace("{ckpt}", str(run / "checkpoints" / "last.pt"))
        .replace("{run}", str(run))
        .replace("{png}", str(png))
        .replace("{out}", str(tmp_path / "out"))
    )


@pytest.mark.parametrize(
    ("command", "dest", "tail"),
    [c[1:] for c in RUNTIME_CASES],
    ids=[c[0] for c in RUNTIME_CASES],
)
def test_commands_refuse_wrong_values_in_one_line(tmp_path, trained, command, dest, tail):
    if dest == "device" and torch.cuda.is_available() and tail[-1] == "cuda":
        pytest.skip("cuda is a valid device here")
    base = BASE[command]
    if dest == "epochs" and "--iterations" in base:  # the two are alternatives
        i = base.index("--iterations")
        base = base[:i] + base[i + 2 :]
    if not tail[0].startswith("--"):  # a positional argument: replace the valid one
        base = [tail[0] if item == POSITIONAL[dest] else item for item in base]
        tail = []
    argv = [_resolve(a, tmp_path, trained) for a in [*command.split(), *base, *tail]]
    _assert_one_line_exit_2(argv, *_run(argv))


def test_the_base_invocations_are_valid(tmp_path, trained):
    """The wrong value is the only thing wrong in each runtime case: the base alone works."""
    cheap = [
        "summary",
        "list",
        "train",
        "data list",
        "data info",
        "predict",
        "plot",
        "embed",
        "explain",
    ]
    for command in cheap:
        argv = [_resolve(a, tmp_path, trained) for a in [*command.split(), *BASE[command]]]
        code, err = _run(argv)
        assert code == 0, f"{argv}: {err[-2000:]}"
    assert json.loads((tmp_path / "out" / "run" / "summary.json").read_text())["iterations"] == 1
