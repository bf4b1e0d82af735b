"""evaluate_classifier and the evaluation data, against computations done by hand here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix

from resnetlab import CheckpointError, ConfigError, create_model
from resnetlab.data import load_dataset, train_val_split
from resnetlab.evaluation.data import eval_loader, load_eval_split
from resnetlab.evaluation.evaluate import evaluate_classifier
from resnetlab.train.run import VAL_SPLIT_SEED


def model_with_statistics(in_channels: int, num_classes: int, size: int) -> torch.nn.Module:
    """A random CIFAR ResNet-8 whose BN running statistics are not the initial ones."""
    model = create_model("cifar_resnet", depth=8, num_classes=num_classes, in_channels=in_channels)
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(16, in_channels, size, size))
    return model.eval()


def checkpoint_data(info) -> dict:
    """A checkpoint's ``data`` entry for a dataset (what training stores)."""
    return {
        k: getattr(info, k) for k in ("name", "classes", "image_size", "channels", "mean", "std")
    }


def run_config(val_fraction: float = 0.0) -> dict:
    return {"data": {"root": None, "val_fraction": val_fraction}, "seed": 5}


@pytest.fixture(scope="module")
def digits16():
    return load_dataset("digits", "test", image_size=16)


@pytest.fixture(scope="module")
def some_digits(digits16):
    """150 test digits: enough for every class, quick to run twice."""
    return digits16.subset(torch.arange(150))


def test_metrics_on_digits_equal_a_direct_computation(some_digits):
    model = model_with_statistics(1, 10, 16)
    loader = eval_loader(some_digits, batch_size=64, device=torch.device("cpu"))
    result = evaluate_classifier(model, loader)

    info = some_digits.info
    x = (some_digits.images.float() / 255 - info.mean[0]) / info.std[0]  # (N, 1, 16, 16)
    with torch.no_grad():
        logits = model(x)
    y, pred = some_digits.labels.numpy(), logits.argmax(1).numpy()
    assert result.samples == len(y) == 150
    np.testing.assert_array_equal(
        result.confusion.numpy(), confusion_matrix(y, pred, labels=range(10))
    )
    top5 = logits.topk(5, dim=1).indices.numpy()
    assert result.top5_error == pytest.approx(1 - np.mean((top5 == y[:, None]).any(1)), abs=1e-12)
    nll = torch.nn.functional.cross_entropy(logits, some_digits.labels).item()
    assert result.loss == pytest.approx(nll, rel=1e-4)


def test_eval_split_uses_the_checkpoint_statistics_and_the_run_val_part(digits16):
    data = {**checkpoint_data(digits16.info), "mean": (0.5,), "std": (0.25,)}
    test = load_eval_split(data, run_config(), "test")
    assert torch.equal(test.images, digits16.images)
    assert (test.info.mean, test.info.std) == ((0.5,), (0.25,))

    train = load_dataset("digits", "train", image_size=16)
    run_train, run_val = train_val_split(train, 0.2, VAL_SPLIT_SEED)
    val = load_eval_split(data, run_config(0.2), "val")
    part = load_eval_split(data, run_config(0.2), "train")
    assert torch.equal(val.images, run_val.images) and torch.equal(val.labels, run_val.labels)
    assert torch.equal(part.images, run_train.images)
    with pytest.raises(ConfigError, match="held out no validation data"):
        load_eval_split(data, run_config(0.0), "val")


def test_eval_split_refuses_other_classes_channels_or_sizes(digits16):
    data = checkpoint_data(digits16.info)
    other = {**data, "classes": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "nine")}
    with pytest.raises(CheckpointError, match="class 9 is '9' here, 'nine' in the checkpoint"):
        load_eval_split(other, run_config(), "test")
    with pytest.raises(CheckpointError, match="classes differ"):
        load_eval_split({**data, "classes": data["classes"][:5]}, run_config(), "test")
    with pytest.raises(CheckpointError, match="1-channel 16x16 images; the checkpoint was trained"):
        load_eval_split({**data, "channels": 3, "mean": (0, 0, 0)}, run_config(), "test")
    with pytest.raises(ConfigError, match="--ten-crop needs folder data"):
        eval_loader(digits16, batch_size=8, device=torch.device("cpu"), ten_crop=True)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of three 40x48 RGB images each, as PNG files."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def test_ten_crop_averages_softmax_over_the_paper_crops(image_folder):
    ds = load_dataset("folder", "test", image_folder, image_size=32)
    data = checkpoint_data(ds.info)
    ds = load_eval_split(data, run_config(), "test", root=image_folder)
    model = model_with_statistics(3, 2, 32)
    loader = eval_loader(ds, batch_size=4, device=torch.device("cpu"), ten_crop=True, workers=0)
    result = evaluate_classifier(model, loader)

    mean, std = torch.tensor(data["mean"]).view(3, 1, 1), torch.tensor(data["std"]).view(3, 1, 1)
    resize = round(256 * 32 / 224)  # the recipe's eval shorter side, scaled to a 32 crop
    nll, preds, labels = 0.0, [], []
    for path, label in ds.samples:
        img = Image.open(path).convert("RGB")
        img = img.resize((resize, round(48 * resize / 40)), Image.Resampling.BILINEAR)
        a = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # (3, H, W)
        h, w = a.shape[1:]
        spots = [(0, 0), (0, w - 32), (h - 32, 0), (h - 32, w - 32), ((h - 32) // 2, (w - 32) // 2)]
        crops = [a[:, t : t + 32, l : l + 32] for t, l in spots]
        crops += [c.flip(-1) for c in crops]
        x = (torch.stack(crops).float() / 255 - mean) / std  # (10, 3, 32, 32)
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=1).mean(0)  # (2,)
        nll -= probs[label].log().item()
        preds.append(int(probs.argmax()))
        labels.append(label)
    np.testing.assert_array_equal(result.confusion.numpy(), confusion_matrix(labels, preds))
    assert result.loss == pytest.approx(nll / len(labels), rel=1e-4)
    assert result.top5_error is None


def test_folder_stats_are_replaced_too(image_folder):
    ds = load_dataset("folder", "test", image_folder, image_size=32)
    data = {**checkpoint_data(ds.info), "mean": (0.1, 0.2, 0.3)}
    replaced = load_eval_split(data, run_config(), "test", root=image_folder)
    assert replaced.info == dataclasses.replace(ds.info, mean=(0.1, 0.2, 0.3))
