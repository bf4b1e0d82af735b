"""A small trained run shared by the eval, predict and export tests.

``trained_run`` trains a CIFAR ResNet-8 on 16x16 digits for a few iterations, once per test
process, and returns its run folder; tests read its ``checkpoints/last.pt``. The accuracy does
not matter: every test compares the commands with a computation of its own on the same weights.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

ITERATIONS = 6
VAL_FRACTION = 0.1  # so that `--split val` has something to measure


@functools.cache
def trained_run(base: Path) -> Path:
    """Train once per process under ``base`` and return the run folder."""
    from resnetlab.train import fit, load_config

    out = base / "trained-digits16"
    cfg = load_config(
        sets=[
            "model.name=cifar_resnet",
            "model.overrides={depth: 8}",
            "data.name=digits",
            "data.image_size=16",
            f"data.val_fraction={VAL_FRACTION}",
            "batch_size=32",
            "optim.lr=0.05",
            "device=cpu",
            "eval_train_at_end=false",
        ],
        flags={"iterations": ITERATIONS},
    )
    fit(cfg, out)
    return out


def run_main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``resnetlab.cli.main(argv)``: (exit code, stdout, stderr); argparse's exits included."""
    from resnetlab.cli import main

    capsys.readouterr()  # drop whatever earlier set-up printed
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse reports bad options by exiting
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def single_line(err: str) -> str:
    """The one line a user error prints, with no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("resnetlab") and "Traceback" not in err, err
    return lines[0]
