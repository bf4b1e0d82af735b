"""No command writes over its own input, or into a run's ``checkpoints/``, whatever path names it.

Every command that writes (``export``, ``eval --out``, ``plot --out``, ``train --out``,
``experiment --out``, ``experiment cifar-table --results-md``, ``data download --data-dir``) and
the Python functions they use are pointed at a run's checkpoint, or its ``checkpoints/`` folder,
spelled every way a path can name a file: as is, with ``..`` and ``./``, through a symlink to the
file or to the folder, as a hard link, and as a new file inside the folder. Each one must end in
one ``resnetlab: error: ...`` line naming the path (exit code 2) with every file under the test's
folder, the run's included, byte-identical afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reliability_support import (
    TRAIN_FAST,
    changes,
    cli_in_process,
    make_run,
    one_error_line,
    snapshot,
)
from resnetlab.errors import ConfigError

# How a path can name the run's checkpoint RUN/checkpoints/last.pt (or a file beside it).
SPELLINGS = ("as-is", "dotdot", "dot-slashes", "symlink", "hardlink", "folder-symlink", "new-file")

# Commands writing one file: argv with {out} the output path (suffix chosen by the command).
FILE_WRITERS = {
    "export torchscript": ["export", "{run}", "--format", "torchscript", "--out", "{out}"],
    "export onnx": ["export", "{run}", "--format", "onnx", "--out", "{out}"],
    "plot": ["plot", "{run}", "--out", "{out}"],
    "cifar-table --results-md": [
        "experiment", "cifar-table", "--depths", "8", "--data", "digits", "--iterations", "1",
        "--image-size", "8", "--results-md", "{out}", "--out", "{work}/exp",
    ],
}  # fmt: skip
# Commands writing into a folder: argv with {out} the folder.
FOLDER_WRITERS = {
    "eval": ["eval", "{run}", "--out", "{out}"],
    "train": ["train", *TRAIN_FAST, "--iterations", "1", "--out", "{out}"],
    "experiment": [
        "experiment", "degradation", "--depths", "8", "--data", "digits", "--iterations", "1",
        "--image-size", "8", "--out", "{out}",
    ],
    "data download": ["data", "download", "--data-dir", "{out}", "--url", "http://127.0.0.1:9/x"],
}  # fmt: skip
FOLDER_SPELLINGS = ("as-is", "dotdot", "folder-symlink", "inside")
# The file a command reads, named again as its output, by another path.
SAME_FILE = ("eval --out (eval.json a hard link of the checkpoint)",
             "train --config OUT/config.yaml", "train --config (a hard link as OUT/config.yaml)",
             "plot --out (a symlink to metrics.jsonl)")  # fmt: skip
API = ("export_checkpoint", "write_outputs", "save_weights", "plot_error_curves", "fit")
DEFAULTS = ("export RUN", "plot RUN")  # without --out: beside the run, never in checkpoints/

# A hard link can only name a file that exists: the checkpoint, which only export can be given.
CASES_FILES = [
    (w, s) for w in FILE_WRITERS for s in SPELLINGS if s != "hardlink" or w == "export torchscript"
]
CASES_FOLDERS = [(w, s) for w in FOLDER_WRITERS for s in FOLDER_SPELLINGS]
CASES = len(CASES_FILES) + len(CASES_FOLDERS) + len(SAME_FILE) + len(API) + len(DEFAULTS)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("outputs") / "run")


@pytest.fixture
def work(tmp_path, base, monkeypatch):
    """A copy-free setting: the module's run folder, linked into a fresh work folder."""
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    (tmp_path / "ckdir").symlink_to(base / "checkpoints", target_is_directory=True)
    return tmp_path


def _file_spelling(run: Path, work: Path, spelling: str, suffix: str) -> str:
    """A path naming ``RUN/checkpoints/NAME``: the checkpoint ``last.pt`` for a ``.pt`` writer,
    else the new file ``last<suffix>`` (``""``: plot's stem, which writes ``last.png``)."""
    written = suffix or ".png"
    folder = run / "checkpoints"
    name = "last" + written
    if spelling == "symlink":
        path = work / f"link{written}"
        path.symlink_to(folder / name)
    elif spelling == "hardlink":
        path = work / f"hard{written}"
        os.link(folder / "last.pt", path)
    else:
        path = {
            "as-is": folder / name,
            "dotdot": folder / ".." / "checkpoints" / name,
            "dot-slashes": f"{run}//checkpoints/./{name}",
            "folder-symlink": work / "ckdir" / name,
            "new-file": folder / f"new{written}",
        }[spelling]
    return str(path) if suffix else str(path).removesuffix(".png")


def _folder_spelling(run: Path, work: Path, spelling: str) -> str:
    """A path naming RUN/checkpoints (or a folder inside it)."""
    return {
        "as-is": str(run / "checkpoints"),
        "dotdot": str(run / "eval" / ".." / "checkpoints"),
        "folder-symlink": str(work / "ckdir"),
        "inside": str(run / "checkpoints" / "sub" / "dir"),
    }[spelling]


def _refused(argv: list[str], roots: list[Path], names: str) -> str:
    before = [snapshot(r) for r in roots]
    code, err = cli_in_process(argv)
    line = one_error_line(err)
    assert code == 2, err
    assert names in line, line
    for root, old in zip(roots, before, strict=True):
        assert changes(old, snapshot(root)) == [], f"{argv} changed files"
    return line


def _suffix(writer: str) -> str:
    return {"export onnx": ".onnx", "cifar-table --results-md": ".md", "plot": ""}.get(
        writer, ".pt"
    )


@pytest.mark.parametrize(
    ("writer", "spelling"), CASES_FILES, ids=[" ".join(c) for c in CASES_FILES]
)
def test_file_outputs_never_replace_the_checkpoint(base, work, writer, spelling):
    out = _file_spelling(base, work, spelling, _suffix(writer))
    argv = [
        a.replace("{run}", str(base)).replace("{work}", str(work)) for a in FILE_WRITERS[writer]
    ]
    argv = [a.replace("{out}", out) for a in argv]
    line = _refused(argv, [base, work], "checkpoint")
    assert out in line or os.path.realpath(out) in line or str(base) in line, line


@pytest.mark.parametrize(
    ("writer", "spelling"), CASES_FOLDERS, ids=[" ".join(c) for c in CASES_FOLDERS]
)
def test_folder_outputs_never_go_into_checkpoints(base, work, writer, spelling):
    out = _folder_spelling(base, work, spelling)
    argv = [a.replace("{run}", str(base)).replace("{out}", out) for a in FOLDER_WRITERS[writer]]
    _refused(argv, [base, work], "a run's checkpoint folder")


def test_an_output_that_is_an_input_by_another_name_is_refused(base, work):
    ckpt = base / "checkpoints" / "last.pt"
    # eval: its eval.json would be the checkpoint
    (work / "ev").mkdir()
    os.link(ckpt, work / "ev" / "eval.json")
    _refused(["eval", str(base), "--out", str(work / "ev")], [base, work], "which this command")
    # train: its config.yaml would be the --config file, by the same name or a hard link
    for name in ("own", "linked"):
        out = work / name
        out.mkdir()
        config = out / "config.yaml"
        if name == "linked":
            (work / "run.yaml").write_text("iterations: 1\n")
            os.link(work / "run.yaml", config)
            given = work / "run.yaml"
        else:
            config.write_text("iterations: 1\n")
            given = config
        argv = ["train", *TRAIN_FAST, "--config", str(given), "--out", str(out)]
        _refused(argv, [base, work], "which this command reads")
    # plot: its PNG would be the run's metrics.jsonl, through a symlink
    (work / "m.png").symlink_to(base / "metrics.jsonl")
    _refused(["plot", str(base), "--out", str(work / "m")], [base, work], "which this command")


def test_the_python_api_refuses_the_same_paths(base, work):
    from resnetlab.analysis.curves import load_curves
    from resnetlab.analysis.plots import plot_error_curves
    from resnetlab.evaluation.report import write_outputs
    from resnetlab.export import export_checkpoint
    from resnetlab.train import fit, load_config
    from resnetlab.train.weights import model_from_checkpoint, save_weights

    ckpts = base / "checkpoints"
    model, _ = model_from_checkpoint(base)
    cfg = load_config(sets=["model.name=cifar_resnet", "model.overrides={depth: 8}"])
    calls = {
        "export_checkpoint": lambda: export_checkpoint(base, "torchscript", work / "hard.pt"),
        "write_outputs": lambda: write_outputs(None, work / "ckdir", {"checkpoint": None}),
        "save_weights": lambda: save_weights(model, ckpts / "w.safetensors"),
        "plot_error_curves": lambda: plot_error_curves(
            {"": {"run": load_curves(base)}}, ckpts / "curves"
        ),
        "fit": lambda: fit(cfg, ckpts / "run"),
    }
    assert sorted(calls) == sorted(API)
    os.link(ckpts / "last.pt", work / "hard.pt")
    before = [snapshot(base), snapshot(work)]
    for name, call in calls.items():
        with pytest.raises(ConfigError) as err:
            call()
        assert "checkpoint" in str(err.value) and "\n" not in str(err.value), name
        assert [changes(b, snapshot(r)) for b, r in zip(before, [base, work], strict=True)] == [
            [],
            [],
        ], name


def test_default_outputs_stay_out_of_checkpoints(base, tmp_path, monkeypatch):
    """``export RUN`` and ``plot RUN`` without ``--out`` write beside the run: ``RUN/export/``
    and ``RUN/curves.png``; nothing goes into ``checkpoints/`` or the current folder."""
    import shutil

    run = shutil.copytree(base, tmp_path / "run", symlinks=True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    before = snapshot(run / "checkpoints")
    assert cli_in_process(["export", str(run), "--format", "torchscript"])[0] == 0
    assert (run / "export" / "last.torchscript.pt").is_file()
    assert (run / "export" / "last.torchscript.pt.json").is_file()
    code, _ = cli_in_process(["plot", str(run)])
    assert code == 0
    assert (run / "curves.png").stat().st_size > 1000 and (run / "curves.svg").is_file()
    assert list((tmp_path / "cwd").iterdir()) == []
    assert changes(before, snapshot(run / "checkpoints")) == []
