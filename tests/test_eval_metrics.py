"""resnetlab.evaluation metrics and report files, checked against scikit-learn and numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix, log_loss, recall_score

from resnetlab.errors import ConfigError
from resnetlab.evaluation.metrics import MetricAccumulator
from resnetlab.evaluation.report import format_confusion, format_summary, write_outputs
from resnetlab.nn.views import crop_average_log_probs


def random_scores(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=gen)
    logits = torch.randn(n, k, generator=gen) * 2
    logits[torch.arange(n), labels] += 1.5  # better than chance, worse than perfect
    return torch.log_softmax(logits, dim=1), labels


def accumulate(log_probs, labels, k, batch):
    acc = MetricAccumulator([f"c{i}" for i in range(k)])
    for start in range(0, len(labels), batch):
        acc.update(log_probs[start : start + batch], labels[start : start + batch])
    return acc.result()


@pytest.mark.parametrize("k", [3, 10])
def test_metrics_equal_sklearn_and_numpy(k):
    log_probs, labels = random_scores(317, k, seed=k)
    result = accumulate(log_probs, labels, k, batch=64)
    y, p = labels.numpy(), log_probs.numpy()
    pred = p.argmax(axis=1)
    assert result.samples == 317
    np.testing.assert_array_equal(
        result.confusion.numpy(), confusion_matrix(y, pred, labels=range(k))
    )
    assert result.top1_error == pytest.approx(float(np.mean(pred != y)), abs=1e-12)
    recall = recall_score(y, pred, labels=range(k), average=None, zero_division=np.nan)
    np.testing.assert_allclose(result.per_class_accuracy, recall, rtol=0, atol=1e-12)
    assert result.loss == pytest.approx(log_loss(y, np.exp(p), labels=range(k)), rel=1e-5)
    if k < 5:
        assert result.top5_error is None
    else:
        top5 = np.argsort(-p, axis=1)[:, :5]
        assert result.top5_error == pytest.approx(1 - float(np.mean((top5 == y[:, None]).any(1))))
        assert 0 < result.top5_error < result.top1_error


def test_batching_does_not_change_the_result():
    log_probs, labels = random_scores(100, 6, seed=1)
    whole, pieces = accumulate(log_probs, labels, 6, 100), accumulate(log_probs, labels, 6, 7)
    assert torch.equal(whole.confusion, pieces.confusion)
    assert (whole.top1_error, whole.top5_error) == (pieces.top1_error, pieces.top5_error)
    assert whole.loss == pytest.approx(pieces.loss, rel=1e-12)


def test_class_without_images_has_no_accuracy():
    acc = MetricAccumulator(["a", "b", "c"])
    acc.update(torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])), torch.tensor([0, 0]))
    result = acc.result()
    assert result.per_class_accuracy == (0.5, None, None)
    assert result.top1_error == 0.5
    assert result.confusion.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_bad_shapes_and_empty_results_raise():
    acc = MetricAccumulator(["a", "b"])
    with pytest.raises(ConfigError, match="do not match 2 labels and 2 classes"):
        acc.update(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="no samples"):
        acc.result()


def test_crop_average_equals_mean_of_softmax():
    logits = torch.randn(4, 10, 6, dtype=torch.float64)
    expected = np.log(torch.softmax(logits, dim=-1).numpy().mean(axis=1))
    np.testing.assert_allclose(crop_average_log_probs(logits).numpy(), expected, atol=1e-6)


def test_confusion_text_lists_every_count_and_accuracy():
    log_probs, labels = random_scores(50, 4, seed=2)
    result = accumulate(log_probs, labels, 4, batch=50)
    lines = format_confusion(result).splitlines()
    assert len(lines) == 5 and lines[0].startswith("true \\ predicted")
    for i, line in enumerate(lines[1:]):
        fields = line.split()
        assert fields[:2] == [str(i), f"c{i}"]
        assert [int(v) for v in fields[2:6]] == result.confusion[i].tolist()
        assert int(fields[6]) == int(result.confusion[i].sum())
        assert fields[7] == f"{100 * result.per_class_accuracy[i]:.2f}%"


def test_summary_shows_top5_only_with_five_classes():
    small = accumulate(*random_scores(20, 3, seed=3), 3, batch=20)
    large = accumulate(*random_scores(20, 5, seed=3), 5, batch=20)
    assert "top-5" not in format_summary(small)
    assert f"top-5 error  {100 * large.top5_error:.2f}%" in format_summary(large)


def test_write_outputs(tmp_path):
    result = accumulate(*random_scores(40, 12, seed=4), 12, batch=16)
    paths = write_outputs(result, tmp_path / "out", {"split": "test"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "confusion.png",
        "confusion.txt",
        "eval.json",
    ]
    record = json.loads(paths["json"].read_text())
    assert record["split"] == "test" and record["samples"] == 40
    assert record["confusion"] == result.confusion.tolist()
    assert record["top1_error"] == result.top1_error
    assert paths["text"].read_text() == format_confusion(result)
    with Image.open(paths["png"]) as img:
        assert img.format == "PNG" and min(img.size) > 300
