"""Training bench: every mode runs through the CLI and reports self-consistent numbers."""

import json

import pytest
import torch

from resnetlab.analysis import summarize
from resnetlab.bench.train import make_train_step
from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.models import create_model
from resnetlab.train.precision import native_bf16


def run_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_train_quick_json_is_self_consistent(capsys):
    r = run_json(["bench", "train", "--model", "resnet20", "--quick", "--json"], capsys)
    assert (r["batch_size"], r["steps_per_window"], r["windows"]) == (8, 2, 2)
    assert (r["data"], r["image_size"], r["device"]) == ("synthetic", [32, 32], "cpu")
    assert r["precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert r["channels_last"] is True and r["compile"] is False
    s = r["img_per_s_stats"]
    assert 0 < s["min"] <= r["img_per_s"] == s["median"] <= s["max"]
    assert r["step_ms"] > 0
    macs = summarize(create_model("resnet20"), (32, 32)).macs
    assert r["train_flop_per_image"] == 6 * macs
    assert r["achieved_flop_per_s"] == pytest.approx(6 * macs * r["img_per_s"])
    assert r["peak_fraction"] == pytest.approx(r["achieved_flop_per_s"] / r["peak_flop_per_s"])
    assert r["peak_flop_per_s"] > 1e8
    assert r["peak_rss_mib"] > 50 and r["peak_gpu_mib"] is None
    assert r["machine"]["torch"] == torch.__version__


def test_bench_train_fp32_nchw_on_a_real_in_memory_dataset(capsys):
    argv = ["bench", "train", "--model", "resnet20", "--data", "digits", "--quick", "--json"]
    r = run_json([*argv, "--precision", "fp32", "--no-channels-last"], capsys)
    assert (r["precision"], r["channels_last"], r["data"]) == ("fp32", False, "digits")
    # digits are one-channel images: the multiply-adds are those of a 1-channel stem.
    macs = summarize(create_model("resnet20", in_channels=1), (32, 32), in_channels=1).macs
    assert r["train_flop_per_image"] == 6 * macs and r["img_per_s"] > 0


def test_bench_train_text_output_names_the_rate_and_the_peak(capsys):
    assert main(["bench", "train", "--model", "resnet20", "--quick", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "images/s median of 2 windows x 2 steps" in out
    assert "of the measured fp32 matmul peak" in out and "peak RSS" in out


def test_the_timed_step_trains_the_model():
    setup = make_train_step("resnet20", batch_size=4, precision="fp32", channels_last=False)
    before = [p.detach().clone() for p in setup.model.parameters()]
    setup.step()
    changed = [not torch.equal(a, p) for a, p in zip(before, setup.model.parameters(), strict=True)]
    assert all(changed)  # SGD with weight decay moves every parameter
    assert setup.settings == {
        "data": "synthetic",
        "batch_size": 4,
        "channels_last": False,
        "compile": False,
        "host_memory": "auto",
    }


def test_synthetic_dataset_has_the_asked_shape_and_classes():
    ds = load_dataset("synthetic", "train", image_size=64)
    assert ds.images.shape == (1024, 3, 64, 64) and ds.images.dtype == torch.uint8
    assert ds.info.num_classes == 10 and int(ds.labels.max()) < 10
    again = load_dataset("synthetic", "train", image_size=64)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.labels, again.labels)


def test_bench_train_takes_the_preset_and_sets_as_train_does(capsys):
    argv = ["bench", "train", "--model", "resnet20", "--quick", "--json", "--preset", "fast"]
    r = run_json([*argv, "--set", "channels_last=false"], capsys)
    assert r["preset"] == "fast" and r["channels_last"] is False
    setup = make_train_step("resnet20", preset="fast", batch_size=4)
    assert setup.cfg.optim.nesterov and setup.cfg.optim.label_smoothing == 0.1
    assert setup.cfg.batch_size == 4 and setup.cfg.schedule.kind == "onecycle"


def test_the_timed_step_is_the_step_train_takes(monkeypatch):
    import resnetlab.train.loop as loop

    calls = []
    real = loop.train_step
    monkeypatch.setattr("resnetlab.bench.train.train_step", lambda *a: calls.append(a) or real(*a))
    setup = make_train_step("resnet20", batch_size=4, precision="fp32")
    setup.step()
    run, images, labels = calls[0]
    assert run.cfg is setup.cfg and images.shape == (4, 3, 32, 32) and len(labels) == 4
    assert run.iteration == 1


def test_bench_peak_quick_json(capsys):
    r = run_json(["bench", "peak", "--quick", "--json"], capsys)
    assert r["size"] == 256
    assert set(r["flop_per_s"]) == {"fp32", "bf16"} and min(r["flop_per_s"].values()) > 1e8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps must be at least 1; got 0"),
        (["--data", "digits", "--batch-size", "5000"], "--batch-size 5000 exceeds the"),
        (["--data", "nope"], "nope"),
    ],
)
def test_bad_train_arguments_are_one_line_errors(args, message, capsys):
    assert main(["bench", "train", "--model", "resnet20", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: ") and message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    assert main(["bench", "train", "--quick", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.gpu
def test_bench_train_on_the_gpu(capsys):
    argv = ["bench", "train", "--model", "resnet20", "--quick", "--json", "--device", "cuda"]
    r = run_json(argv, capsys)
    assert r["device"].startswith("cuda") and r["img_per_s"] > 0 and r["peak_gpu_mib"] > 0
    assert "gpu" in r["machine"]
