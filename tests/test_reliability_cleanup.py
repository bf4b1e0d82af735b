"""A run that fails before its first step leaves no trace, and deletes nothing that was there.

Each way a run can fail before it takes a step (a damaged ``--weights`` file, a dataset that is
not there, a value found bad only once the data is loaded, an image that fails to decode in the
first batch, an interrupt) is tried on each kind of output folder (one that does not exist, with
folders above it that do not either; an empty one; one holding a user's files; one holding the
lock file of a run killed before it wrote anything). Afterwards the test's whole folder must be
exactly as before: every file byte-identical, nothing added, nothing removed.
"""

from __future__ import annotations

import pytest
from PIL import Image

from reliability_support import TRAIN_FAST, changes, cli_in_process, one_error_line, snapshot

CAUSES = {
    "bad --weights": ["--weights", "{work}/damaged.pt"],
    "missing dataset": ["--data", "cifar10", "--data-dir", "{work}/no-such-data"],
    "batch larger than the data": ["--batch-size", "100000"],
    "image fails in the first batch": [
        "--data", "folder", "--data-dir", "{work}/images", "--strict",
        "--set", "data.workers=0", "--set", "data.augment=false",
    ],
    "interrupt before the first step": [],
}  # fmt: skip
FOLDERS = ("new, nested", "empty", "holding the user's files", "holding a stale .lock")
CASES = len(CAUSES) * len(FOLDERS) + 2  # + an experiment's run, one job and two


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    (tmp_path / "damaged.pt").write_bytes(b"PK\x03\x04 a torn zip")
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")
    # a valid header and a cut-off body: the folder scan accepts it, decoding fails
    whole = (tmp_path / "images" / "train" / "a" / "0.png").read_bytes()
    (tmp_path / "images" / "train" / "a" / "0.png").write_bytes(whole[: len(whole) // 2])
    return tmp_path


def _out(work, kind: str):
    if kind == "new, nested":
        return work / "new" / "a" / "run"
    out = work / "run"
    out.mkdir()
    if kind == "holding the user's files":
        (out / "notes.txt").write_text("mine\n")
        (out / "plots").mkdir()
        (out / "plots" / "old.png").write_bytes(b"\x89PNG old")
    elif kind == "holding a stale .lock":
        (out / ".lock").write_text("12345\n")
    return out


@pytest.mark.parametrize("kind", FOLDERS)
@pytest.mark.parametrize("cause", list(CAUSES))
def test_a_run_that_never_started_leaves_no_trace(work, cause, kind, monkeypatch):
    out = _out(work, kind)
    argv = ["train", *TRAIN_FAST, "--iterations", "2", "--out", str(out)]
    argv += [a.replace("{work}", str(work)) for a in CAUSES[cause]]
    if cause.startswith("interrupt"):

        def interrupted(run):
            raise KeyboardInterrupt

        monkeypatch.setattr("resnetlab.train.loop.train_one_epoch", interrupted)
    before = snapshot(work)
    code, err = cli_in_process(argv)
    if cause.startswith("interrupt"):
        assert code == 130 and err.strip() == "resnetlab: interrupted", err
    else:
        assert code == 2, err
        one_error_line(err)
    assert changes(before, snapshot(work)) == []


def test_the_folder_of_a_run_that_started_is_kept(work):
    """The control: a run that took a step and then failed keeps what it wrote."""
    out = work / "started"
    argv = ["train", *TRAIN_FAST, "--iterations", "2", "--lr", "1e30", "--out", str(out)]
    code, err = cli_in_process(argv)
    assert code == 2 and "training diverged" in one_error_line(err)
    assert (out / "config.yaml").is_file()  # it took its steps: its folder says what ran


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_an_experiment_whose_runs_never_started_leaves_no_trace(work, jobs):
    out = work / "exp" / "deg"
    argv = ["experiment", "degradation", "--depths", "8", "--data", "cifar10", "--data-dir",
            str(work / "no-such-data"), "--iterations", "1", "--jobs", str(jobs),
            "--out", str(out)]  # fmt: skip
    before = snapshot(work)
    code, err = cli_in_process(argv, timeout=300)
    assert code == 2, err
    one_error_line(err)
    assert changes(before, snapshot(work)) == []
