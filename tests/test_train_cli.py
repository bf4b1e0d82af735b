"""`resnetlab train`: a user's mistakes give one clear line and exit code 2."""

import math

import pytest
import torch

from resnetlab.cli import main
from resnetlab.train.checkpoint import load_checkpoint

TINY = ["--model", "cifar_resnet", "--set", "model.overrides.depth=8", "--data", "digits",
        "--image-size", "16", "--batch-size", "16"]  # fmt: skip


def _error(capsys, argv):
    """Run the CLI; return its one stderr line, after checking exit code 2."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
        (["--epochs", "2", "--iterations", "9"], "not allowed with argument --epochs"),
        (["--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
        (["--data", "mnist"], "argument --data: invalid choice: 'mnist'"),
        (["--set", "optim.lr=abc"], "--set optim.lr=abc: optim.lr must be a number; got 'abc'"),
        (["--set", "optim.nesterov=yes please"], "optim.nesterov must be true or false"),
        (["--lr", "-1"], "resnetlab: error: optim.lr must be positive; got -1.0"),
        (["--model", "resnet21"], "resnetlab: error: unknown model 'resnet21'; did you mean"),
        (["--config", "missing.yaml"], "resnetlab: error: missing.yaml: config file not found"),
        (["--preset", "slow"], "argument --preset: invalid choice: 'slow'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, tmp_path, argv, expected):
    line = _error(capsys, ["train", *argv, "--out", str(tmp_path / "run")])
    assert expected in line
    assert not (tmp_path / "run").exists()


def test_a_model_that_cannot_take_the_data(capsys, tmp_path):
    line = _error(capsys, ["train", "--model", "resnet50_signs", "--out", str(tmp_path)])
    assert (
        line
        == "resnetlab: error: model 'resnet50_signs' takes 64x64 images only; the data is 32x32"
    )


def test_weights_from_a_checkpoint_of_another_model(capsys, tmp_path):
    first = tmp_path / "first"
    assert main(["train", *TINY, "--iterations", "2", "--out", str(first)]) == 0
    assert "done: 2 iterations" in capsys.readouterr().out
    weights = first / "checkpoints" / "last.pt"
    line = _error(capsys, ["train", "--model", "resnet20", "--weights", str(weights),
                           "--out", str(tmp_path / "second")])  # fmt: skip
    assert line.startswith(f"resnetlab: error: {weights} (a checkpoint of model 'cifar_resnet'): "
                           "weights do not fit the model (missing: ")  # fmt: skip
    line = _error(capsys, ["train", *TINY, "--weights", str(tmp_path / "no.pt"), "--out",
                           str(tmp_path / "third")])  # fmt: skip
    assert line == f"resnetlab: error: {tmp_path / 'no.pt'}: weight file not found"
    # The same model starts from those weights.
    assert main(["train", *TINY, "--iterations", "1", "--weights", str(weights),
                 "--set", "optim.lr=1e-12", "--out", str(tmp_path / "fourth")]) == 0  # fmt: skip
    start = load_checkpoint(weights)["state"]["model"]["conv1.weight"]
    after = load_checkpoint(tmp_path / "fourth")["state"]["model"]["conv1.weight"]
    torch.testing.assert_close(after, start, atol=1e-9, rtol=0)


def test_a_folder_that_holds_a_run_is_not_overwritten(capsys, tmp_path):
    assert main(["train", *TINY, "--iterations", "1", "--out", str(tmp_path)]) == 0
    line = _error(capsys, ["train", *TINY, "--iterations", "1", "--out", str(tmp_path)])
    assert line == (f"resnetlab: error: {tmp_path} already holds a run: continue it with "
                    f"--resume {tmp_path}, or give another --out")  # fmt: skip


def test_tensorboard_without_its_package_is_a_clear_error(capsys, tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        line = _error(capsys, ["train", *TINY, "--set", "tensorboard=true", "--out", str(tmp_path)])
        assert line == (
            "resnetlab: error: tensorboard=true needs the tensorboard package "
            "(pip install tensorboard)"
        )
    else:
        pytest.skip("tensorboard is installed")


def test_a_distributed_run_needs_an_out_folder(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    line = _error(capsys, ["train", *TINY])
    assert (
        line == "resnetlab: error: a distributed run needs --out DIR (the same for every process)"
    )


def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(capsys, tmp_path):
    # lr 0.1, then x1e12 from iteration 3: the loss becomes inf/NaN a step or two later.
    sets = ["schedule.milestones=[3]", "schedule.gamma=1e12", "checkpoint_every=1"]
    argv = ["train", *TINY, "--iterations", "50", "--out", str(tmp_path)]
    argv += [arg for item in sets for arg in ("--set", item)]
    line = _error(capsys, argv)
    assert line.startswith("resnetlab: error: training diverged: ")
    what = line.split("training diverged: ")[1].split(" at iteration ")[0]
    if what.startswith("the loss is "):  # checked before every step
        assert not math.isfinite(float(what.removeprefix("the loss is ")))
    else:  # checked before every checkpoint
        assert what == "a weight is no longer finite"
    iteration = int(line.split(" at iteration ")[1].split(" ")[0])
    assert 3 < iteration < 50
    assert f"the last good checkpoint is {tmp_path / 'checkpoints' / 'last.pt'}" in line
    ckpt = load_checkpoint(tmp_path)
    assert 3 <= ckpt["progress"]["iteration"] <= iteration
    assert all(torch.isfinite(t).all() for t in ckpt["state"]["model"].values())
    assert not (tmp_path / "summary.json").exists()
