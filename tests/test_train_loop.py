"""The training loop on real data: it learns, it records what it did, and the records are true."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from resnetlab.data import load_dataset, make_loader
from resnetlab.train import config_from_dict, evaluate, fit, load_config, train_one_epoch
from resnetlab.train.distributed import World
from resnetlab.train.run import build_run
from resnetlab.train.weights import model_from_checkpoint

TINY = ["model.name=cifar_resnet", "model.overrides.depth=8", "data.name=digits",
        "data.image_size=16", "batch_size=16", "deterministic=true"]  # fmt: skip


def _by_hand(model, ds):
    """Loss and error of ``model`` on ``ds``, normalising and batching by hand."""
    mean = torch.tensor(ds.info.mean)[None, :, None, None]
    std = torch.tensor(ds.info.std)[None, :, None, None]
    x = (ds.images.float() / 255 - mean) / std  # (N, C, H, W)
    with torch.no_grad():
        logits = torch.cat([model.eval()(chunk) for chunk in x.split(100)])
    loss = F.cross_entropy(logits.double(), ds.labels).item()
    return loss, (logits.argmax(1) != ds.labels).double().mean().item()


@pytest.mark.slow
def test_resnet20_reaches_95_percent_on_digits_with_the_fast_preset(tmp_path):
    # Flips and 4-pixel shifts do not suit 16x16 digits (a flipped 2 is no 2): no augmentation.
    sets = ["model.name=resnet20", "data.name=digits", "data.image_size=16", "epochs=6",
            "data.augment=false", "log_every=20"]  # fmt: skip
    cfg = load_config(preset="fast", sets=sets)
    summary = fit(cfg, tmp_path)
    assert summary["final"]["test_error"] <= 0.05
    assert summary["final"]["train_error"] <= 0.02

    # The summary is on disk, and the final test error is that of the last checkpoint's model.
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    model, ckpt = model_from_checkpoint(tmp_path)
    test = load_dataset("digits", "test", image_size=16)
    loss, error = _by_hand(model.float(), test)
    assert error == pytest.approx(summary["final"]["test_error"], abs=1e-12)
    assert loss == pytest.approx(summary["final"]["test_loss"], rel=0.02)  # bf16 autocast in fit
    assert ckpt["data"]["classes"] == [str(d) for d in range(10)]
    assert config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == cfg


def test_the_net_can_overfit_one_fixed_batch(tmp_path):
    cfg = load_config(sets=[*TINY, "iterations=60", "log_every=1000", "optim.weight_decay=0"])
    run = build_run(cfg, tmp_path, World(), resume=False)
    images, labels = next(iter(run.train_loader.epoch(0)))

    class OneBatch:
        info, batch_size = run.info, len(labels)

        def __len__(self):
            return 20

        def epoch(self, epoch, start=0):
            for _ in range(start, 20):
                yield images, labels

    run.train_loader = run.eval_loaders["test"] = OneBatch()
    before = evaluate(run.model, OneBatch())
    for _ in range(3):
        train_one_epoch(run)
    after = evaluate(run.model, OneBatch())
    run.log.close()
    assert (run.iteration, run.epoch, run.batch) == (60, 2, 20)  # the last epoch ran to its end
    assert before["loss"] > 1.5
    assert after["loss"] < 0.1 * before["loss"] and after["error"] == 0.0


def test_evaluate_equals_an_independent_computation():
    test = load_dataset("digits", "test", image_size=16)
    torch.manual_seed(3)
    from resnetlab.models import build_model

    model = build_model("cifar_resnet", 10, 1, {"depth": 8})
    with torch.no_grad():  # BN statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    got = evaluate(model.train(), make_loader(test, 64, train=False))
    assert model.training  # put back as it was
    loss, error = _by_hand(model, test)
    assert got["loss"] == pytest.approx(loss, rel=1e-6)
    assert got["error"] == pytest.approx(error, abs=1e-12)


def test_run_folder_records(tmp_path):
    sets = ["iterations=12", "log_every=5", "eval_every=6", "data.val_fraction=0.1",
            "grad_norms_every=4", "checkpoint_every=1", "keep_last=20",
            "optim.label_smoothing=0.1"]  # fmt: skip
    cfg = load_config(sets=TINY + sets)
    summary = fit(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["iteration"] for r in train] == [5, 10, 12]
    assert [r["iteration"] for r in evals] == [6, 12]
    assert set(train[0]) == {"kind", "iteration", "epoch", "lr", "train_loss", "train_error",
                             "img_per_s", "wall_s"}  # fmt: skip
    assert set(evals[0]) == {"kind", "iteration", "epoch", "val_loss", "val_error", "test_loss",
                             "test_error", "wall_s"}  # fmt: skip
    n_batches = (1437 - round(1437 * 0.1)) // 16
    assert train[0]["epoch"] == round(5 / n_batches, 4)
    assert all(0 <= r[k] <= 1 for r in records for k in r if k.endswith("_error"))
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [r["iteration"] for r in records]
    assert float(rows[0]["train_loss"]) == pytest.approx(train[0]["train_loss"])
    assert summary["best"]["metric"] == "val_error"
    assert summary["final"]["val_error"] == evals[-1]["val_error"]
    _check_grad_norms(tmp_path, cfg)


def _check_grad_norms(run_dir, cfg):
    """grad_norms.jsonl at iteration 4 equals the gradient recomputed from the step-3 checkpoint."""
    records = [json.loads(line) for line in (run_dir / "grad_norms.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [4, 8, 12]
    model, _ = model_from_checkpoint(run_dir / "checkpoints" / "step-00000003.pt")
    names = {f"{n}.weight" for n, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}  # fmt: skip
    assert set(records[0]["norms"]) == names
    run = build_run(cfg, run_dir / "again", World(), resume=False)
    images, labels = next(iter(run.train_loader.epoch(0, start=3)))  # the 4th batch
    run.log.close()
    model.train().zero_grad()
    F.cross_entropy(model(images), labels, label_smoothing=0.1).backward()
    for name, param in model.named_parameters():
        if name in names:
            assert param.grad.norm().item() == pytest.approx(records[0]["norms"][name], rel=1e-5)
