"""`resnetlab embed`: the pooled features of a split, equal to the model's own, good enough for a
nearest-class-mean classifier to score close to the model itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from eval_support import run_main, single_line
from resnetlab.evaluation.loading import load_trained
from use_support import trained_digits

# Measured (AMD EPYC, AVX2, torch 2.13.0 CPU, deterministic, one run): the model scores 99.17%
# (357 of the 360 test digits), a nearest-class-mean classifier on its features 98.89% (356): a
# gap of 0.28 points, one image. The bound leaves room for other CPUs' rounding.
MAX_GAP = 0.03


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_digits(tmp_path_factory.getbasetemp())


def _embed(run_dir, split, out, capsys):
    code, stdout, err = run_main(
        ["embed", str(run_dir), "--split", split, "--out", str(out)], capsys
    )
    assert code == 0, err
    return stdout


def test_nearest_class_mean_on_the_features_scores_close_to_the_model(run_dir, tmp_path, capsys):
    _embed(run_dir, "train", tmp_path / "train.npy", capsys)
    stdout = _embed(run_dir, "test", tmp_path / "test.safetensors", capsys)
    assert "wrote 360 features of 64 numbers" in stdout
    train_x = torch.from_numpy(np.load(tmp_path / "train.npy"))
    train_y = torch.from_numpy(np.load(tmp_path / "train.labels.npy"))
    test = load_file(tmp_path / "test.safetensors")
    assert train_x.shape == (1437, 64) and train_y.shape == (1437,)
    assert test["features"].shape == (360, 64) and test["labels"].dtype == torch.int64
    means = torch.stack([train_x[train_y == c].mean(0) for c in range(10)])  # (10, 64)
    nearest = torch.cdist(test["features"], means).argmin(1)
    ncm = (nearest == test["labels"]).double().mean().item()
    model_accuracy = 1 - json.loads((run_dir / "summary.json").read_text())["final"]["test_error"]
    assert model_accuracy > 0.9  # a model worth comparing with
    assert abs(ncm - model_accuracy) <= MAX_GAP, (ncm, model_accuracy)

    record = json.loads((tmp_path / "test.safetensors.json").read_text())
    assert record["samples"] == 360 and record["dim"] == 64 and record["split"] == "test"
    assert record["classes"] == [str(d) for d in range(10)] and record["model"] == "cifar_resnet"
    assert record["files"] == {
        "features": "test.safetensors: features",
        "labels": "test.safetensors: labels",
    }
    assert (
        json.loads((tmp_path / "train.npy.json").read_text())["files"]["labels"]
        == "train.labels.npy"
    )


def test_the_features_are_the_input_of_the_classifier(run_dir, tmp_path, capsys):
    _embed(run_dir, "test", tmp_path / "f.npy", capsys)
    features = torch.from_numpy(np.load(tmp_path / "f.npy"))
    model, ckpt, _ = load_trained(run_dir)
    from resnetlab.data import load_dataset

    test = load_dataset("digits", "test", image_size=16)
    mean = torch.tensor(ckpt["data"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(ckpt["data"]["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        x = (test.images.float() / 255 - mean) / std
        logits = model(x)
    assert torch.allclose(model.fc(features), logits, atol=1e-5)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "f.labels.npy")), test.labels)


def test_embed_errors_are_one_line(run_dir, tmp_path, capsys):
    for argv, message in [
        (["--out", str(tmp_path / "f.csv")], "embeddings are written as .npy or .safetensors"),
        (["--out", str(tmp_path)], "embeddings are written as"),
        (["--out", str(tmp_path / "f.npy"), "--split", "val"], "held out no validation data"),
    ]:
        code, _, err = run_main(["embed", str(run_dir), *argv], capsys)
        assert code == 2 and message in single_line(err), err
    assert not list(tmp_path.iterdir())


def test_embed_never_writes_over_the_checkpoint_or_into_checkpoints(run_dir, tmp_path, capsys):
    last = run_dir / "checkpoints" / "last.pt"
    before = last.read_bytes()
    (tmp_path / "hard.npy").hardlink_to(last)  # the checkpoint by another name
    for out, message in [
        (tmp_path / "hard.npy", "is the same file as"),
        (run_dir / "checkpoints" / "f.npy", "a run's checkpoint folder"),
    ]:
        code, _, err = run_main(["embed", str(run_dir), "--out", str(out)], capsys)
        assert code == 2 and message in single_line(err), err
    assert last.read_bytes() == before
    assert not (run_dir / "checkpoints" / "f.npy").exists()
