"""resnetlab.export: ONNX and TorchScript files agree with eager PyTorch, for any batch size."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from resnetlab import ConfigError, create_model
from resnetlab.export import (
    ExportMismatch,
    check_export,
    export_onnx,
    export_torchscript,
    load_exported,
    random_inputs,
    verify_export,
)

SIZE = (16, 16)


def tiny_model(seed: int) -> torch.nn.Module:
    """A CIFAR ResNet-8 on 1-channel 16x16 images whose BN running statistics are not the
    initial (0, 1), so that eval mode and train mode give different outputs."""
    torch.manual_seed(seed)
    model = create_model("cifar_resnet", depth=8, num_classes=7, in_channels=1)
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 1, *SIZE) * 3 + 1)
    return model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model(0)


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    model.train()  # export must use eval mode whatever mode the model is in
    path = export_onnx(model, torch.randn(2, 1, *SIZE), tmp_path_factory.mktemp("onnx") / "m.onnx")
    assert model.training, "export changed the model's mode"
    return path


@pytest.fixture(scope="module")
def torchscript_file(model, tmp_path_factory):
    model.train()
    path = export_torchscript(
        model, torch.randn(2, 1, *SIZE), tmp_path_factory.mktemp("ts") / "m.pt"
    )
    assert model.training
    return path


def eager(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(x).numpy()


def test_onnx_runs_in_onnxruntime_for_any_batch_size(model, onnx_file):
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("input", "logits")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [1, *SIZE]
    for batch in (1, 5):
        x = torch.randn(batch, 1, *SIZE)
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == (batch, 7)
        np.testing.assert_allclose(got, eager(model, x), rtol=0, atol=1e-4)


def test_onnx_file_is_self_contained_and_valid(onnx_file):
    assert [p.name for p in onnx_file.parent.iterdir()] == ["m.onnx"]  # no temp or data files
    proto = onnx.load(str(onnx_file))
    onnx.checker.check_model(proto)
    assert sum(int(np.prod(t.dims)) for t in proto.graph.initializer) > 0


def test_check_export_is_the_max_abs_difference(model, onnx_file):
    inputs = random_inputs(1, SIZE, batch_sizes=(1, 3), seed=4)
    assert [tuple(x.shape) for x in inputs] == [(1, 1, *SIZE), (3, 1, *SIZE)]
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    manual = max(
        float(np.abs(session.run(None, {"input": x.numpy()})[0] - eager(model, x)).max())
        for x in inputs
    )
    diff = check_export(onnx_file, model, inputs)
    assert diff == pytest.approx(manual, rel=1e-6, abs=1e-9)
    assert diff < 1e-4
    assert verify_export(onnx_file, model, inputs) == diff


def test_check_export_catches_a_different_model(onnx_file):
    other = tiny_model(1)
    inputs = random_inputs(1, SIZE)
    assert check_export(onnx_file, other, inputs) > 1e-2
    with pytest.raises(ExportMismatch, match="differs from PyTorch by up to"):
        verify_export(onnx_file, other, inputs)


def test_check_export_catches_a_shape_mismatch(onnx_file):
    wider = create_model("cifar_resnet", depth=8, num_classes=9, in_channels=1)
    with pytest.raises(ExportMismatch, match=r"output shape \(1, 7\)"):
        check_export(onnx_file, wider, torch.randn(1, 1, *SIZE))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_reloads_and_matches_for_any_batch_size(model, torchscript_file):
    loaded = torch.jit.load(str(torchscript_file))
    for batch in (1, 4):
        x = torch.randn(batch, 1, *SIZE)
        with torch.no_grad():
            np.testing.assert_allclose(loaded(x).numpy(), eager(model, x), rtol=0, atol=1e-4)
    assert check_export(torchscript_file, model, random_inputs(1, SIZE)) < 1e-4
    assert [p.name for p in torchscript_file.parent.iterdir()] == ["m.pt"]


def test_load_exported_format(onnx_file, torchscript_file):
    x = torch.randn(2, 1, *SIZE)
    by_suffix, explicit = load_exported(onnx_file), load_exported(onnx_file, "onnx")
    assert torch.equal(by_suffix(x), explicit(x))
    with pytest.raises(ConfigError, match="format must be one of"):
        load_exported(torchscript_file, "tflite")
