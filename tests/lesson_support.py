"""One toy lesson (``resnetlab experiment lesson``, a few steps), shared by the tests that read it.

The lesson trains eight tiny runs, so it is built once per test session: the first test process
that needs it builds it under a file lock in the session's shared temporary folder, and every
other process (``pytest -n 2``) and module finds it there. Its section 5 reads records that the
analysis library wrote for tiny nets (``beyond_records``), split over two ``results.json`` files
laid out differently, as two experiments might lay them out.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import torch
from filelock import FileLock

from analysis_support import batches, toy_data, trained
from resnetlab.analysis.landscape import loss_landscape
from resnetlab.analysis.lesion import lesion_study
from resnetlab.analysis.records import write_json
from resnetlab.analysis.shattered import shattered_study
from resnetlab.cli import main

TOY = [
    "--depths", "8", "14",
    "--iterations", "6",
    "--batch-size", "32",
    "--set", "eval_every=3",
    "--set", "log_every=2",
    "--shallow", "8",
    "--deep", "14",
    "--identity-iterations", "4",
]  # fmt: skip


def beyond_records(root: Path) -> list[Path]:
    """Folders with a shattered-gradients, a lesion and a landscape ``results.json``."""
    images, _ = toy_data(2)
    shattered = shattered_study(images[0], images[1], depths=(8,), points=16, num_classes=4)
    data = batches(64)
    studies = [
        lesion_study(trained(14, residual), data, draws=1, deletion_ks=[1], swap_ks=[1])
        for residual in (False, True)
    ]
    landscapes = [
        loss_landscape(trained(8, residual), data[:1], alphas=(-0.5, -0.25, 0.0, 0.25, 0.5))
        for residual in (False, True)
    ]
    folders = [root / "shattered", root / "lesion-and-landscape"]
    write_json(folders[0] / "results.json", {"records": [r.to_dict() for r in shattered]})
    write_json(
        folders[1] / "results.json",
        {
            "lesion": {"studies": [s.to_dict() for s in studies]},
            "landscape": [x.to_dict() for x in landscapes],
        },
    )
    return folders


def build_toy_lesson(tmp_path_factory) -> tuple[Path, str]:
    """``(out, stdout)`` of the shared toy lesson, built on first use."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # gw0's folder sits in the session's own folder
        base = base.parent
    shared = base / "lesson-toy"
    shared.mkdir(parents=True, exist_ok=True)
    out, done = shared / "out", shared / "stdout.txt"
    with FileLock(str(shared / ".lock")):
        if not done.is_file():
            folders = beyond_records(shared / "beyond")
            missing = shared / "beyond" / "not-run"
            argv = ["experiment", "lesson", *TOY, "--out", str(out), "--beyond"]
            argv += [*map(str, folders), str(missing)]
            buffer = io.StringIO()
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with contextlib.redirect_stdout(buffer):
                    assert main(argv) == 0
            finally:
                torch.set_num_threads(threads)
            done.write_text(buffer.getvalue())
    return out, done.read_text()
