"""train.ema: the weight EMA's update equation, its state, and its place in a run."""

import pytest
import torch

from resnetlab import create_model
from resnetlab.train import fit, load_config
from resnetlab.train.checkpoint import load_checkpoint
from resnetlab.train.ema import WeightEMA
from resnetlab.train.weights import model_from_checkpoint

TINY = ["model.name=cifar_resnet", "model.overrides.depth=8", "data.name=digits",
        "data.image_size=16", "batch_size=32", "deterministic=true", "log_every=5",
        "schedule.kind=constant", "eval_train_at_end=false"]  # fmt: skip


def _perturb(model, step):
    gen = torch.Generator().manual_seed(step)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=gen))
            else:
                t.add_(1)  # BN's batch counter


def test_ema_follows_its_update_equation_for_weights_and_bn_statistics():
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=8)
    ema = WeightEMA(model, decay=0.9)
    expected = {k: v.double().clone() for k, v in model.state_dict().items()}
    for t in range(4):
        _perturb(model, t)
        ema.update(model)
        d = min(0.9, (1 + t) / (10 + t))  # 0.1, 0.18, 0.25, 0.31: the warm-up, below 0.9
        for k, live in model.state_dict().items():
            if live.is_floating_point():
                expected[k] = d * expected[k] + (1 - d) * live.double()
            else:
                expected[k] = live.double()
    assert ema.updates == 4
    got = ema.module.state_dict()
    assert "bn1.running_var" in got
    for k, v in expected.items():
        torch.testing.assert_close(got[k].double(), v, rtol=1e-6, atol=1e-6, msg=k)
    assert got["bn1.num_batches_tracked"] == model.state_dict()["bn1.num_batches_tracked"]
    assert ema.decay_at(10**6) == 0.9
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_state_round_trips():
    model = create_model("cifar_resnet", depth=8)
    ema = WeightEMA(model, 0.99)
    _perturb(model, 0)
    ema.update(model)
    other = WeightEMA(create_model("cifar_resnet", depth=8), 0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    for k, v in ema.module.state_dict().items():
        assert torch.equal(v, other.module.state_dict()[k])


def _by_hand_error(model, ds):
    mean = torch.tensor(ds.info.mean)[None, :, None, None]
    std = torch.tensor(ds.info.std)[None, :, None, None]
    x = (ds.images.float() / 255 - mean) / std
    with torch.no_grad():
        logits = model.eval()(x)
    return (logits.argmax(1) != ds.labels).double().mean().item()


def test_a_run_with_ema_evaluates_and_exports_the_ema_weights(tmp_path):
    from resnetlab.data import load_dataset

    cfg = load_config(sets=[*TINY, "iterations=30", "ema_decay=0.9"])
    summary = fit(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    ema_state, raw = ckpt["state"]["ema"]["module"], ckpt["state"]["model"]
    assert ckpt["state"]["ema"]["updates"] == 30
    assert not torch.equal(ema_state["conv1.weight"], raw["conv1.weight"])
    model, _ = model_from_checkpoint(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema_state[k]), k
    test = load_dataset("digits", "test", image_size=16)
    assert summary["final"]["test_error"] == pytest.approx(_by_hand_error(model, test), abs=1e-9)
