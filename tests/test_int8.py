"""export.int8: PT2E int8 with the x86 inductor quantizer keeps the network's answers."""

import pytest
import torch

from resnetlab import create_model
from resnetlab.errors import ConfigError
from resnetlab.export.int8 import quantize_int8, top1_agreement

pytest.importorskip("torchao")


def _model_and_batches():
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=8).eval()
    gen = torch.Generator().manual_seed(1)
    calib = [torch.randn(16, 3, 16, 16, generator=gen) for _ in range(4)]
    return model, calib, torch.randn(64, 3, 16, 16, generator=gen)


def test_int8_simulation_stays_close_to_fp32_and_leaves_the_model_alone():
    model, calib, x = _model_and_batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    int8 = quantize_int8(model, calib, compile=False)
    with torch.no_grad():
        ref = model(x)
    out = int8(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert not torch.equal(out, ref)  # it is quantized
    assert (out - ref).abs().max() / ref.abs().max() < 0.1
    assert top1_agreement(ref, out) >= 0.9
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert int8(x[:3]).shape == (3, 10)  # any batch size


def test_a_module_kept_in_fp32_is_left_unquantized():
    model, calib, x = _model_and_batches()
    all_int8 = quantize_int8(model, calib, compile=False)
    kept = quantize_int8(model, calib, compile=False, keep_fp32=["fc"])
    with torch.no_grad():
        ref = model(x)
    # only the classifier differs between the two: keeping it in fp32 brings the logits closer
    assert not torch.equal(all_int8(x), kept(x))
    assert (kept(x) - ref).abs().max() <= (all_int8(x) - ref).abs().max()


def test_top1_agreement_counts_matching_argmaxes():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    b = torch.tensor([[0.9, 0.1], [1.0, 0.0], [3.0, 0.0], [1.0, 2.0]])
    assert top1_agreement(a, b) == 0.75


def test_no_calibration_batch_is_an_error():
    model, _, _ = _model_and_batches()
    with pytest.raises(ConfigError, match="calibration batch"):
        quantize_int8(model, [])


@pytest.mark.slow
def test_compiled_int8_matches_its_simulation():
    model, calib, x = _model_and_batches()
    simulated = quantize_int8(model, calib, compile=False)(x)
    compiled = quantize_int8(model, calib)(x)  # oneDNN int8 kernels through inductor
    assert top1_agreement(simulated, compiled) >= 0.95
    assert (compiled - simulated).abs().max() / simulated.abs().max() < 0.05
