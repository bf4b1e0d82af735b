"""A run killed at any moment and resumed ends with the weights of a run that went straight."""

import json

import pytest
import torch

from resnetlab.cli import main
from train_runs import TINY, checkpoint, train, train_until_killed

N = 120  # iterations: 1.35 epochs of the 1,437 digits at batch 16, so a resume crosses epochs
ARGS = [*TINY, "--iterations", str(N), "--batch-size", "16", "--set", "checkpoint_every=7",
        "--set", "log_every=5", "--set", "eval_every=40", "--set", "keep_last=2"]  # fmt: skip


def _records(run_dir):
    """metrics.jsonl without the timings (they differ from run to run by nature)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("wall_s", "img_per_s")}
        for line in lines
    ]


def _same_weights(a, b):
    for key, tensor in a["state"]["model"].items():
        assert torch.equal(tensor, b["state"]["model"][key]), key
    for slot, state in a["state"]["optimizer"]["state"].items():
        other = b["state"]["optimizer"]["state"][slot]
        assert torch.equal(state["momentum_buffer"], other["momentum_buffer"])


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical_to_a_straight_run(tmp_path):
    straight, killed, early = tmp_path / "straight", tmp_path / "killed", tmp_path / "early"
    train([*ARGS, "--out", str(straight)])
    # SIGKILL mid-run, at whatever the child is doing when its 35th-step checkpoint appears.
    train_until_killed([*ARGS, "--out", str(killed)], killed / "checkpoints" / "step-00000035.pt")
    stopped_at = checkpoint(killed)["progress"]["iteration"]
    assert 0 < stopped_at < N
    assert not (killed / "summary.json").exists()
    train(["--resume", str(killed)])

    a, b = checkpoint(straight), checkpoint(killed)
    assert b["progress"]["iteration"] == N
    _same_weights(a, b)
    assert _records(straight) == _records(killed)  # the records after the kill are redone once
    best_a, best_b = (checkpoint(d, "best.pt")["best"] for d in (straight, killed))
    assert best_a.pop("wall_s") > 0 and best_b.pop("wall_s") > 0
    assert best_a == best_b
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (straight, killed))
    assert sa["final"] == sb["final"]

    # Killed before its first checkpoint: --resume starts the run over, from its config.yaml.
    train_until_killed([*ARGS, "--out", str(early)], early / "config.yaml")
    train(["--resume", str(early)])
    _same_weights(a, checkpoint(early))
    assert _records(straight) == _records(early)


def test_resume_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"resnetlab: error: {tmp_path / 'nope'}: no such run folder"
    )
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder (no checkpoints/last.pt, no config.yaml)" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err == "resnetlab: error: --resume continues a run with its own config; drop --lr\n"


def test_resuming_a_finished_run_changes_no_record(tmp_path):
    from resnetlab.train import fit, load_config

    cfg = load_config(
        sets=[
            "model.name=cifar_resnet",
            "model.overrides.depth=8",
            "data.image_size=16",
            "iterations=6",
            "batch_size=16",
            "log_every=2",
            "eval_every=3",
        ]
    )
    first = fit(cfg, tmp_path)
    records = (tmp_path / "metrics.jsonl").read_text()
    again = fit(cfg, tmp_path, resume=True)
    assert (tmp_path / "metrics.jsonl").read_text() == records
    assert again["final"] == first["final"] and again["best"] == first["best"]
