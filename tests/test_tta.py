"""Test-time augmentation: the softmax of each image and its mirror image (flip), and of those two
moved 2 pixels down-right and up-left (flip-shift), averaged."""

from __future__ import annotations

import json

import pytest
import torch

from bench_support import load_benchmark, table_rows
from eval_support import run_main, single_line, trained_run
from resnetlab import create_model
from resnetlab.data import load_dataset, make_loader
from resnetlab.errors import ConfigError
from resnetlab.evaluation import evaluate_classifier
from resnetlab.nn.views import SHIFT, TTA_VIEWS, shift_images, tta_views
from resnetlab.train import evaluate, load_config


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


def moved_by_hand(images, dy, dx):
    """Each pixel (i, j) of the result is images[i - dy, j - dx], 0 where that is outside."""
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[..., i, j] = images[..., i - dy, j - dx]
    return out


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, 2), (-2, -2), (1, -3), (-4, 0)])
def test_shift_moves_every_pixel_and_zero_fills_the_border(dy, dx):
    images = torch.randn(3, 2, 7, 9)
    assert torch.equal(shift_images(images, dy, dx), moved_by_hand(images, dy, dx))


def test_flip_shift_views_are_the_image_and_mirror_as_they_are_and_moved_both_ways():
    images = torch.randn(4, 3, 8, 8)
    views = tta_views(images, "flip-shift")
    assert views.shape == (4, TTA_VIEWS["flip-shift"], 3, 8, 8) == (4, 6, 3, 8, 8)
    mirror = images.flip(-1)
    expected = [images, mirror] + [
        moved_by_hand(x, d, d) for d in (SHIFT, -SHIFT) for x in (images, mirror)
    ]
    for k, view in enumerate(expected):
        assert torch.equal(views[:, k], view), k
    assert torch.equal(tta_views(images, "flip"), views[:, :2])
    with pytest.raises(ValueError, match="unknown test-time augmentation 'crop'"):
        tta_views(images, "crop")


def test_flip_shift_average_equals_a_hand_computation_in_eval_and_in_training():
    torch.manual_seed(0)
    ds = load_dataset("synthetic", "test", image_size=16)
    model = create_model("cifar_resnet", depth=8, num_classes=len(ds.info.classes)).eval()
    loader = make_loader(ds, 64, train=False)
    x = torch.cat([images for images, _ in loader.epoch(0)])
    labels = torch.cat([y for _, y in loader.epoch(0)])
    with torch.no_grad():
        views = [x, x.flip(3)]
        views += [moved_by_hand(v, d, d) for d in (2, -2) for v in (x, x.flip(3))]
        probs = sum(torch.softmax(model(v), 1) for v in views) / 6
    nll = -probs.double().gather(1, labels[:, None]).log().mean().item()
    error = (probs.argmax(1) != labels).double().mean().item()
    result = evaluate_classifier(model, loader, tta="flip-shift")
    assert result.top1_error == pytest.approx(error, abs=0)
    assert result.loss == pytest.approx(nll, rel=1e-5)
    got = evaluate(model, loader, tta="flip-shift")  # what a run's eval_tta uses
    assert got["error"] == pytest.approx(error, abs=1e-12)
    assert got["loss"] == pytest.approx(nll, rel=1e-5)
    assert got != evaluate(model, loader, tta="flip")  # the moved views change the scores


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


def test_eval_tta_flip_shift_on_the_command_line_and_in_a_config(run_dir, capsys):
    code, out, err = run_main(["eval", str(run_dir), "--tta", "flip-shift", "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    assert record["views"] == 6 and record["tta"] == "flip-shift"
    assert (run_dir / "eval" / "last-digits-test-flipshift" / "eval.json").is_file()
    code, out, err = run_main(["eval", str(run_dir), "--tta", "flip-shift", "--ten-crop"], capsys)
    assert code == 2 and "--tta flip-shift and --ten-crop" in single_line(err)
    code, out, err = run_main(["eval", str(run_dir), "--tta", "shift"], capsys)
    assert code == 2 and "flip-shift" in err
    assert load_config(preset="fast", sets=["eval_tta=flip-shift"]).eval_tta == "flip-shift"
    with pytest.raises(ConfigError, match="eval_tta"):
        load_config(sets=["eval_tta=shift"])
