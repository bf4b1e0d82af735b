"""Inference bench: every variant runs, reports sane numbers, and is checked against eager."""

import json

import pytest
import torch

from resnetlab.bench import infer
from resnetlab.bench.infer import bench_infer, compare_outputs, format_infer, make_variant
from resnetlab.cli import main
from resnetlab.models import create_model

FAST_VARIANTS = "eager,folded,bf16,onnxruntime"


def test_compare_outputs_measures_relative_error_and_top1():
    want = torch.tensor([[1.0, 4.0], [3.0, 0.0]])
    got = torch.tensor([[1.0, 3.0], [3.0, 3.5]])
    check = compare_outputs(got, want)
    assert check["max_rel_err"] == pytest.approx(3.5 / 4.0)
    assert check["top1_agreement"] == 0.5


# onnxruntime's check runs in the CLI test below (its export takes seconds).
@pytest.mark.parametrize("name", ["eager", "folded", "bf16"])
def test_each_variant_computes_the_eager_function(name, tmp_path):
    model = create_model("resnet20").eval()
    x = torch.randn(3, 3, 32, 32)
    fn = make_variant(name, model, x, tmp_path)
    with torch.inference_mode():
        got, want = fn(x), model(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    tol = infer.TOLERANCE.get(name, infer.FP32_TOLERANCE)
    assert compare_outputs(got, want)["max_rel_err"] <= tol
    # And on a batch size it was not built with.
    y = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        assert compare_outputs(fn(y), model(y))["max_rel_err"] <= tol


def test_bench_infer_cli_json_reports_every_variant(capsys):
    argv = ["bench", "infer", "--model", "resnet20", "--batch-size", "2", "--quick", "--json"]
    assert main([*argv, "--variants", FAST_VARIANTS]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["model"], result["batch_size"]) == ("resnet20", 2)
    assert result["image_size"] == [32, 32]
    assert list(result["variants"]) == FAST_VARIANTS.split(",")
    for name, r in result["variants"].items():
        assert r["status"] == "ok", name
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["max"]
        assert r["img_per_s"] == pytest.approx(2 / (lat["median"] / 1e3))
        assert r["speedup"] > 0 and 0 <= r["max_rel_err"] <= r["tolerance"]
        assert r["top1_agreement"] == 1.0
    assert result["variants"]["eager"]["max_rel_err"] == 0
    assert result["variants"]["eager"]["speedup"] == 1
    assert result["machine"]["torch"] == torch.__version__


def test_a_variant_beyond_its_tolerance_is_a_mismatch_and_exit_code_1(capsys, monkeypatch):
    monkeypatch.setitem(infer.TOLERANCE, "bf16", 0.0)  # bf16 can never be exact
    argv = ["bench", "infer", "--model", "resnet20", "--batch-size", "1", "--quick"]
    assert main([*argv, "--variants", "bf16"]) == 1
    out = capsys.readouterr().out
    assert "mismatch (tolerance 0)" in out and "eager" in out


def test_library_result_names_unavailable_variants(monkeypatch):
    monkeypatch.setattr(infer, "_compiled", lambda *args: "torch.compile failed: X")
    result = bench_infer("resnet20", 1, variants=("compiled",), warmup=0, iters=1)
    assert result["variants"]["compiled"] == {
        "status": "unavailable",
        "reason": "torch.compile failed: X",
    }
    assert "compiled     unavailable: torch.compile failed: X" in format_infer(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1; got 0"),
        (["--variants", "eager,nope"], "variant must be one of"),
        (["--model", "resnet21"], "unknown model 'resnet21'"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    assert main(["bench", "infer", "--quick", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_compiled_variant_computes_the_eager_function(tmp_path):
    # torch.compile needs a C++ compiler and takes a minute on two cores the first time, so one
    # compile here (fp32, the strict tolerance); the bench scripts check every form they time.
    model = create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    fn = make_variant("compiled", model, x, tmp_path)
    if isinstance(fn, str):
        pytest.skip(fn)
    with torch.inference_mode():
        assert compare_outputs(fn(x), model(x))["max_rel_err"] <= infer.FP32_TOLERANCE


@pytest.mark.gpu
def test_bench_infer_on_the_gpu(capsys):
    argv = ["bench", "infer", "--model", "resnet20", "--batch-size", "4", "--quick", "--json"]
    assert main([*argv, "--device", "cuda", "--variants", "eager,folded,bf16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert all(r["status"] == "ok" for r in result["variants"].values())
    assert "gpu" in result["machine"]
