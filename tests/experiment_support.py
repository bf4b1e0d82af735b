"""Running an experiment through the CLI in a test, in this process or in a child to be killed."""

from __future__ import annotations

import contextlib
import html
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from resnetlab.analysis.records import read_json
from resnetlab.cli import main

TIMEOUT_S = 300


def run_cli(argv: list[str]) -> str:
    """``resnetlab ARGV`` in this process on one thread (toy nets run fastest so, and the same
    numbers every time); its stdout. Fails the test on a non-zero exit."""
    buffer = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(buffer):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, buffer.getvalue()[-3000:]
    return buffer.getvalue()


def lines_ending(text: str, suffix: str) -> list[str]:
    """The lines of ``text`` that end with ``suffix``."""
    return [line for line in text.splitlines() if line.endswith(suffix)]


def findings_agree_with_files(out: Path) -> list[dict]:
    """Check that every finding of ``results.json`` is in ``results.md`` and ``report.html``;
    return the findings."""
    results = read_json(out / "results.json")
    page = (out / "report.html").read_text(encoding="utf-8")
    markdown = (out / "results.md").read_text(encoding="utf-8")
    for finding in results["findings"]:
        assert html.escape(finding["text"]) in page, finding["text"]
        assert f"- {finding['text']}" in markdown, finding["text"]
    assert results["command"] in page
    return results["findings"]


def kill_when(argv: list[str], ready: Callable[[], bool]) -> None:
    """Start ``python -m resnetlab ARGV`` (one thread) and SIGKILL its whole process group as
    soon as ``ready()`` holds; fail if it ends first."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnetlab", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches spawned workers too
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ready():
            assert proc.poll() is None, f"the run ended (code {proc.returncode}) before the kill"
            assert time.monotonic() < deadline, f"not ready in {TIMEOUT_S} s"
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
