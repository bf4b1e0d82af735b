"""Two runs pointed at one output folder: the second refuses in one line, and a killed run's lock
is gone the moment it dies (the kernel drops an ``flock`` with its process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from reliability_support import TRAIN_FAST, start_cli, wait_for
from resnetlab.cli import main
from resnetlab.errors import ConfigError
from resnetlab.train.runlock import LOCK_NAME, remove_stale_temp_files, run_lock

# second run (fresh), second run (--resume), after SIGKILL of the holder, same process twice
CASES = 4


def test_a_second_lock_on_the_same_folder_is_refused_and_the_first_release_frees_it(tmp_path):
    with run_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        busy = rf"in use by another run \(process {os.getpid()}\)"
        with pytest.raises(ConfigError, match=busy), run_lock(tmp_path):
            pass
        with run_lock(tmp_path, enabled=False):  # the other ranks of a distributed run
            pass
    with run_lock(tmp_path):  # released on exit
        pass


def test_taking_the_lock_removes_temporary_files_of_killed_writers(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    stale = [ckpts / ".last.pt.tmp-999", tmp_path / ".metrics.csv.tmp-999"]
    kept = [ckpts / "last.pt", ckpts / "step-00000010.pt", tmp_path / "metrics.jsonl"]
    for path in stale + kept:
        path.write_bytes(b"x")
    with run_lock(tmp_path):
        pass
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert remove_stale_temp_files(tmp_path) == []


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from resnetlab.train.runlock import run_lock
                with run_lock({str(tmp_path)!r}):
                    print("held", flush=True)
                    time.sleep(600)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"process {holder.pid}\)"), run_lock(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with run_lock(tmp_path):  # no stale lock: nothing to clean up, no waiting
        pass


def test_a_second_training_in_a_busy_folder_refuses_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*TRAIN_FAST, "--iterations", "100000", "--set", "checkpoint_every=5"]
    first = start_cli(["train", *args, "--out", str(out)], tmp_path / "first.log")
    try:
        wait_for(lambda: (out / "checkpoints" / "last.pt").exists(), first)
        for argv in (["train", *args, "--out", str(out)], ["train", "--resume", str(out)]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err == (
                f"resnetlab: error: {out} is in use by another run (process {first.pid}); "
                "wait for it to end, or give another --out\n"
            )
        assert first.is_alive()  # the first run was untouched by the attempts
    finally:
        first.kill()
        first.join(60)
    assert first.exitcode == -signal.SIGKILL
    with run_lock(out):  # the killed run left no lock behind
        pass
