"""Flip test-time augmentation: the softmax of each image and its mirror image, averaged."""

from __future__ import annotations

import json

import pytest
import torch

from bench_support import load_benchmark, table_rows
from eval_support import run_main, single_line, trained_run
from resnetlab import create_model
from resnetlab.data import load_dataset, make_loader
from resnetlab.evaluation import evaluate_classifier


def test_flip_average_equals_a_hand_computation():
    torch.manual_seed(0)
    ds = load_dataset("synthetic", "test", image_size=16)
    model = create_model("cifar_resnet", depth=8, num_classes=len(ds.info.classes)).eval()
    loader = make_loader(ds, 50, train=False)
    result = evaluate_classifier(model, loader, tta="flip")
    hand_nll, hand_right, n = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader.epoch(0):
            # the mean of the two softmax vectors, as the 10-crop averages its ten
            probs = (torch.softmax(model(images), 1) + torch.softmax(model(images.flip(3)), 1)) / 2
            hand_nll -= probs.gather(1, labels[:, None]).log().sum().item()
            hand_right += (probs.argmax(1) == labels).sum().item()
            n += len(labels)
    assert result.samples == n == 256
    assert result.top1_error == pytest.approx(1 - hand_right / n, abs=0)
    assert result.loss == pytest.approx(hand_nll / n, rel=1e-5)
    # without TTA the scores are the image's alone, and differ
    assert evaluate_classifier(model, loader).loss != pytest.approx(result.loss, rel=1e-5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory.getbasetemp())


def test_eval_tta_flip_on_the_command_line(run_dir, tmp_path, capsys):
    code, out, err = run_main(["eval", str(run_dir), "--tta", "flip", "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    assert record["views"] == 2 and record["tta"] == "flip"
    assert (run_dir / "eval" / "last-digits-test-flip" / "eval.json").is_file()
    code, out, err = run_main(["eval", str(run_dir), "--tta", "flip", "--ten-crop"], capsys)
    assert code == 2 and "--ten-crop: the 10 crops hold their mirror images" in single_line(err)

    bench = load_benchmark("tta_flip")
    assert bench.main([str(run_dir)]) == 0
    (row,) = table_rows(capsys.readouterr().out)
    assert row[0].startswith("cifar_resnet") and row[2] == "360"
    assert row[4] == f"{100 * record['top1_error']:.2f}%"
