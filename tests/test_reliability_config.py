"""Config values that pass for numbers but are not, and YAML that asks to run code.

A 5,000-digit integer (past Python's int-to-string limit), an integer beyond 64 bits, ``inf``,
``-inf`` and ``nan`` in a ``--config`` file or a ``--set`` item, and ``!!python/...`` tags: each is
one ``resnetlab: error: ...`` line naming the file or item and the problem, exit code 2, no run
folder made, and nothing executed (the tags' payload would create a file).
"""

from __future__ import annotations

import pytest

from reliability_support import TRAIN_FAST, cli_in_process, one_error_line

HUGE = "9" * 5000  # past Python's 4,300-digit limit for int <-> str
PAYLOAD = "!!python/object/apply:os.system ['touch {marker}']"

# name -> (the YAML file's text, the words the error line must hold)
CONFIG_FILES = {
    "5000-digit iterations": (f"iterations: {HUGE}\n", "an integer too long to read"),
    "65-bit iterations": (f"iterations: {2**64}\n", "iterations must be an integer of at most 64"),
    "lr .inf": ("optim: {lr: .inf}\n", "optim.lr must be a finite number; got inf"),
    "lr -.inf": ("optim: {lr: -.inf}\n", "optim.lr must be a finite number; got -inf"),
    "lr .nan": ("optim: {lr: .nan}\n", "optim.lr must be a finite number; got nan"),
    "lr 1e999": ("optim: {lr: 1.0e+999}\n", "optim.lr must be a finite number; got inf"),
    "python tag, top level": (PAYLOAD + "\n", "the YAML tag 'tag:yaml.org,2002:python/object"),
    "python tag, a value": ("seed: " + PAYLOAD + "\n", "is not allowed (only plain values are)"),
    "python name tag": ("seed: !!python/name:os.system\n", "the YAML tag"),
}
# name -> (the --set item, the words the error line must hold)
SET_ITEMS = {
    "5000-digit iterations": (f"iterations={HUGE}", "integer too long to read"),
    "65-bit seed": (f"seed={2**64}", "seed must be an integer of at most 64 bits"),
    # YAML reads inf, nan and 1e999 (no dot) as text: refused as not a number at all
    "lr inf": ("optim.lr=inf", "optim.lr must be a number; got 'inf'"),
    "lr .inf": ("optim.lr=.inf", "optim.lr must be a finite number; got inf"),
    "lr -inf": ("optim.lr=-inf", "optim.lr must be a number; got '-inf'"),
    "lr nan": ("optim.lr=nan", "optim.lr must be a number; got 'nan'"),
    "lr 1e999": ("optim.lr=1e999", "optim.lr must be a number; got '1e999'"),
    "lr 1.0e+999": ("optim.lr=1.0e+999", "optim.lr must be a finite number; got inf"),
    "momentum .nan": ("optim.momentum=.nan", "optim.momentum must be a finite number"),
    "python tag": ("seed=" + PAYLOAD, "is not allowed (only plain values are)"),
}
CASES = len(CONFIG_FILES) + len(SET_ITEMS)


def _refused(tmp_path, argv: list[str], words: str) -> str:
    marker = tmp_path / "executed"
    argv = [a.replace("{marker}", str(marker)) for a in argv]
    code, err = cli_in_process(["train", *TRAIN_FAST, *argv, "--out", str(tmp_path / "run")])
    line = one_error_line(err)
    assert code == 2, err
    assert words in line, line
    assert len(line) < 400, line  # never the 5,000 digits back
    assert not (tmp_path / "run").exists()  # no trace of a run that never started
    assert not marker.exists()  # the payload never ran
    return line


@pytest.mark.parametrize("case", CONFIG_FILES)
def test_a_config_file_value_that_is_no_number_is_one_line(tmp_path, case):
    text, words = CONFIG_FILES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("{marker}", str(tmp_path / "executed")), encoding="utf-8")
    assert f"{path}:" in _refused(tmp_path, ["--config", str(path)], words)


@pytest.mark.parametrize("case", SET_ITEMS)
def test_a_set_item_that_is_no_number_is_one_line(tmp_path, case):
    item, words = SET_ITEMS[case]
    _refused(tmp_path, ["--set", item], words)


def test_the_limits_admit_what_a_config_holds(tmp_path):
    """Controls: the largest 64-bit integer and ordinary floats pass the checks."""
    from resnetlab.train.config import load_config

    cfg = load_config(sets=[f"iterations={2**63 - 1}", "optim.lr=1e-3", "optim.momentum=0.9"])
    assert cfg.iterations == 2**63 - 1 and cfg.optim.lr == 1e-3 and cfg.optim.momentum == 0.9
