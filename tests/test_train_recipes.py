"""The time-to-accuracy options of a run: flip TTA in evaluate, progressive resizing, the SGD
implementations, train_fraction, and a bit-identical resume with all of them on."""

import math

import pytest
import torch
import torch.nn.functional as F

from resnetlab import create_model
from resnetlab.data import load_dataset, make_loader
from resnetlab.errors import ConfigError
from resnetlab.train import evaluate, fit, load_config, loop
from resnetlab.train.checkpoint import load_checkpoint
from resnetlab.train.config import OptimConfig
from resnetlab.train.distributed import World
from resnetlab.train.optim import make_optimizer
from resnetlab.train.run import _schedule_sizes, build_run

TINY = ["model.name=cifar_resnet", "model.overrides.depth=8", "data.name=digits",
        "data.image_size=16", "batch_size=32", "deterministic=true", "log_every=5",
        "eval_train_at_end=false"]  # fmt: skip


def test_flip_tta_scores_the_mean_softmax_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=8, in_channels=1).eval()
    ds = load_dataset("digits", "test", image_size=16)
    loader = make_loader(ds, 100, train=False)
    got = evaluate(model, loader, tta="flip")
    x = torch.cat([images for images, _ in loader.epoch(0)])  # normalised, in order
    with torch.no_grad():
        probs = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    loss = F.nll_loss(probs.double().log(), ds.labels).item()
    error = (probs.argmax(1) != ds.labels).double().mean().item()
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    assert got["error"] == pytest.approx(error, abs=1e-12)
    assert got != evaluate(model, loader)  # without TTA the scores differ


def test_progressive_resizing_resizes_the_augmented_batches_by_epoch():
    ds = load_dataset("digits", "train", image_size=16)
    loader = make_loader(ds, 8, train=True, seed=1)
    plain = make_loader(ds, 8, train=True, seed=1)
    _schedule_sizes(loader, [8, 12, 16], epochs=6)
    assert loader.sizes == [(0, 8), (2, 12), (4, 16)]
    assert [loader.side_at(e) for e in range(6)] == [8, 8, 12, 12, None, None]
    for epoch, side in ((1, 8), (3, 12), (5, 16)):
        (a, la), (b, lb) = next(loader.epoch(epoch)), next(plain.epoch(epoch))
        assert a.shape[-2:] == (side, side) and torch.equal(la, lb)
        resized = F.interpolate(b, size=(side, side), mode="bilinear", antialias=True)
        expected = b if side == 16 else resized
        assert torch.equal(a, expected)


@pytest.mark.parametrize("impl", ["foreach", "fused", "auto"])
def test_every_sgd_implementation_takes_the_loop_s_steps(impl):
    def trained(implementation):
        torch.manual_seed(0)
        model = create_model("cifar_resnet", depth=8)
        cfg = OptimConfig(lr=0.1, weight_decay=5e-4, nesterov=True, implementation=implementation)
        opt = make_optimizer(cfg, model.parameters())
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            x, y = (
                torch.randn(8, 3, 16, 16, generator=gen),
                torch.randint(0, 10, (8,), generator=gen),
            )
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return model.state_dict()

    a, b = trained("loop"), trained(impl)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_train_fraction_trains_on_a_seeded_share_of_the_split():
    full = build_run(load_config(sets=TINY), None, World())
    part = build_run(load_config(sets=[*TINY, "data.train_fraction=0.25"]), None, World())
    n = len(full.train_loader.labels)
    assert len(part.train_loader.labels) == round(n * 0.25)
    again = build_run(
        load_config(sets=[*TINY, "data.train_fraction=0.25", "seed=5"]), None, World()
    )
    assert torch.equal(part.train_loader.labels, again.train_loader.labels)  # not the run seed's


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("optim.implementation", "fast", "optim.implementation must be one of"),
     ("eval_tta", "rot90", "eval_tta must be one of"),
     ("ema_decay", "1.0", "ema_decay must be in"),
     ("data.train_fraction", "0", "data.train_fraction must be in"),
     ("data.mixup_alpha", "-1", "data.mixup_alpha must be at least 0"),
     ("data.train_sizes", "[16, 0]", "data.train_sizes must be image sides")],
)  # fmt: skip
def test_bad_recipe_values_are_one_error_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sets=[*TINY, f"{key}={value}"])


RECIPE = [*TINY, "schedule.kind=constant", "optim.lr=0.05", "ema_decay=0.9",
          "data.mixup_alpha=0.2", "data.cutmix_alpha=1.0", "model.overrides.drop_path_rate=0.2",
          "data.train_sizes=[12, 16]", "eval_tta=flip", "checkpoint_every=10",
          "data.train_fraction=0.2"]  # fmt: skip


class Stop(Exception):
    """Stands for a kill right after a checkpoint."""


def test_a_run_with_every_ingredient_resumes_bit_identically(tmp_path, monkeypatch):
    cfg = load_config(sets=[*RECIPE, "iterations=40"])  # 5 epochs of 287 images at batch 32
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    fit(cfg, straight)
    original = loop.after_step

    def stop_after_20(run, lr):
        original(run, lr)
        if run.iteration == 20:  # inside epoch 2, a checkpoint just written, before a resize
            raise Stop

    monkeypatch.setattr(loop, "after_step", stop_after_20)
    with pytest.raises(Stop):
        fit(cfg, resumed)
    monkeypatch.setattr(loop, "after_step", original)
    assert load_checkpoint(resumed / "checkpoints" / "last.pt")["progress"]["iteration"] == 20
    fit(cfg, resumed, resume=True)
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, resumed))
    assert a["progress"]["iteration"] == b["progress"]["iteration"] == 40
    assert a["state"]["ema"]["updates"] == b["state"]["ema"]["updates"] == 40
    for part in ("model", "ema"):
        sa, sb = a["state"][part], b["state"][part]
        sa, sb = sa.get("module", sa), sb.get("module", sb)
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (part, k)
    assert a["last_eval"]["test_error"] == b["last_eval"]["test_error"]
    assert math.isfinite(a["last_eval"]["test_loss"])
