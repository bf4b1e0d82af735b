"""Other programs' weight files load into our models with equal outputs: akamaster's CIFAR `.th`
checkpoints (written here from an independent module with their structure) and the course's
Keras ResNet-50 `.h5` (written here in Keras 2's layout, checked against a NumPy forward pass
that reads the file's own arrays, channels last)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from data_fixtures import write_cifar10
from eval_support import run_main, single_line
from resnetlab import CheckpointError, create_model
from resnetlab.data import load_dataset
from resnetlab.train import load_config
from resnetlab.train.converters import IMAGENET_MEAN, IMAGENET_STD
from resnetlab.train.weights import load_weights


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------
# akamaster/pytorch_resnet_cifar10: an independent module with the layout of their resnet.py
# ---------------------------------------------------------------------------------------------
class AkaBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if stride != 1 or cin != planes else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.pad is None:
            return F.relu(out + x)
        return F.relu(out + F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)))


class AkaNet(nn.Module):
    def __init__(self, n: int, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, planes in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(AkaBlock(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3]).view(out.size(0), -1)
        return self.linear(out)


def write_akamaster_th(path, n: int = 3, seed: int = 0) -> AkaNet:
    """A trained-looking AkaNet (random BN statistics too), saved as their trainer saves it:
    a DataParallel state dict without num_batches_tracked (PyTorch 0.3/0.4) and best_prec1."""
    torch.manual_seed(seed)
    net = AkaNet(n)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    state = {
        f"module.{k}": v for k, v in net.state_dict().items() if "num_batches_tracked" not in k
    }
    torch.save({"state_dict": state, "best_prec1": 91.73}, path)
    return net.eval()


def test_akamaster_checkpoint_predicts_as_their_network(tmp_path):
    path = tmp_path / "resnet20-12fca82f.th"
    theirs = write_akamaster_th(path)
    ours = load_weights(create_model("resnet20", shortcut_pad="split"), path).eval()
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        a, b = theirs(x), ours(x)
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()
    # Our default placement would give other answers: the file refuses to go into it.
    with pytest.raises(CheckpointError, match="shortcut_pad='split'"):
        load_weights(create_model("resnet20"), path)
    # train --weights X.th builds the net the file needs
    assert load_config(sets=[f"model.weights={path}"]).model.overrides == {"shortcut_pad": "split"}


def test_eval_cli_on_an_akamaster_file_predicts_as_their_network(tmp_path, capsys):
    path = tmp_path / "resnet20.th"
    theirs = write_akamaster_th(path, seed=1)
    write_cifar10(tmp_path / "cifar", n=12)
    test = load_dataset("cifar10", "test", tmp_path / "cifar", verify=False)
    # their trainer's normalisation, ImageNet's mean and std, not CIFAR's own statistics
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        preds = theirs((test.images.float() / 255 - mean) / std).argmax(1)
    expected = torch.zeros(10, 10, dtype=torch.int64)
    for y, p in zip(test.labels.tolist(), preds.tolist(), strict=True):
        expected[y, p] += 1
    argv = ["eval", str(path), "--model", "resnet20", "--data", "cifar10", "--json"]
    argv += ["--data-dir", str(tmp_path / "cifar"), "--no-verify", "--out", str(tmp_path / "ev")]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    record = json.loads(out)
    assert record["confusion"] == expected.tolist()
    assert record["iteration"] is None and record["model"] == "resnet20"

    code, out, err = run_main([*argv[:2], *argv[4:]], capsys)  # no --model
    assert code == 2
    assert "a weight file, not a checkpoint: give --model NAME" in single_line(err)
    argv[3] = "resnet32"  # a ResNet-20 file into a ResNet-32
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert "weights do not fit the model (missing: layer1.3.conv1.weight" in single_line(err)


# ---------------------------------------------------------------------------------------------
# The course's Keras ResNet-50, saved by Keras 2, against a channels-last NumPy forward pass
# ---------------------------------------------------------------------------------------------
STAGES = [(2, (64, 64, 256), 1, "abc"), (3, (128, 128, 512), 2, "abcd"),
          (4, (256, 256, 1024), 2, "abcdef"), (5, (512, 512, 2048), 2, "abc")]  # fmt: skip
EPS = 1e-3  # Keras BatchNormalization's default


def keras_layers(classes: int, rng) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(layer name, {weight kind: array}) in the course's order and names, random weights."""

    def conv(k, cin, cout):
        w = rng.normal(0, np.sqrt(2 / (k * k * cin)), (k, k, cin, cout))
        return {"kernel": w.astype(np.float32), "bias": rng.normal(0, 0.05, cout).astype("f4")}

    def bn(c):
        return {
            "gamma": rng.uniform(0.5, 1.0, c).astype("f4"),
            "beta": rng.normal(0, 0.1, c).astype("f4"),
            "moving_mean": rng.normal(0, 0.1, c).astype("f4"),
            "moving_variance": rng.uniform(0.5, 2.0, c).astype("f4"),
        }

    layers = [("input_1", {}), ("zero_padding2d_1", {}), ("conv1", conv(7, 3, 64))]
    layers += [("bn_conv1", bn(64)), ("activation_1", {}), ("max_pooling2d_1", {})]
    cin = 64
    for stage, (f1, f2, f3), _, blocks in STAGES:
        for block in blocks:
            base = f"{stage}{block}_branch"
            layers += [(f"res{base}2a", conv(1, cin, f1)), (f"bn{base}2a", bn(f1))]
            layers += [(f"res{base}2b", conv(3, f1, f2)), (f"bn{base}2b", bn(f2))]
            layers += [(f"res{base}2c", conv(1, f2, f3)), (f"bn{base}2c", bn(f3))]
            if block == "a":
                layers += [(f"res{base}1", conv(1, cin, f3)), (f"bn{base}1", bn(f3))]
            layers += [(f"add_{stage}{block}", {})]
            cin = f3
    dense = {
        "kernel": rng.normal(0, 0.02, (2048, classes)).astype("f4"),
        "bias": np.zeros(classes, "f4"),
    }
    return [*layers, ("avg_pool", {}), ("flatten_1", {}), (f"fc{classes}", dense)]


def write_keras_h5(path, layers, *, whole_model: bool = True, chunked: bool = False) -> None:
    """Keras 2's layout: ``model.save`` puts the weights under model_weights/, ``save_weights``
    at the root; layer ``L``'s weight ``k`` is the dataset ``L/L/k:0``, named in the group's
    weight_names; long attributes are split into ``name0``, ``name1``, ..."""
    order = {"kernel": 0, "bias": 1, "gamma": 0, "beta": 1, "moving_mean": 2, "moving_variance": 3}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.1.6"
        f.attrs["backend"] = b"tensorflow"
        if whole_model:
            f.attrs["model_config"] = json.dumps({"class_name": "Model"}).encode()
            f.create_group("optimizer_weights")
        root = f.create_group("model_weights") if whole_model else f
        names = np.array([name.encode() for name, _ in layers])
        if chunked:
            half = len(names) // 2
            root.attrs["layer_names0"], root.attrs["layer_names1"] = names[:half], names[half:]
        else:
            root.attrs["layer_names"] = names
        for name, weights in layers:
            g = root.create_group(name)
            kinds = sorted(weights, key=order.get)
            g.attrs["weight_names"] = np.array([f"{name}/{k}:0".encode() for k in kinds])
            for k in kinds:
                g.create_dataset(f"{name}/{k}:0", data=weights[k])


def keras_forward(layers, x: np.ndarray) -> np.ndarray:
    """The course's network, channels last, in float64, from the file's arrays: (N, 64, 64, 3)
    pixels in [0, 1] -> (N, classes) logits."""
    w = {name: {k: v.astype(np.float64) for k, v in ws.items()} for name, ws in layers}

    def conv(x, name, stride=1, same=False):
        k = w[name]["kernel"]  # (kh, kw, in, out)
        kh = k.shape[0]
        if same:
            p = (kh - 1) // 2
            x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        h = (x.shape[1] - kh) // stride + 1
        out = np.zeros((x.shape[0], h, h, k.shape[3]))
        for i in range(kh):
            for j in range(kh):
                patch = x[
                    :, i : i + stride * (h - 1) + 1 : stride, j : j + stride * (h - 1) + 1 : stride
                ]
                out += patch @ k[i, j]
        return out + w[name]["bias"]

    def bn(x, name):
        b = w[name]
        return (x - b["moving_mean"]) / np.sqrt(b["moving_variance"] + EPS) * b["gamma"] + b["beta"]

    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    x = np.pad(x.astype(np.float64), ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = relu(bn(conv(x, "conv1", 2), "bn_conv1"))
    h = (x.shape[1] - 3) // 2 + 1  # max-pool 3x3/2, valid
    x = np.max(
        [x[:, i : i + 2 * h - 1 : 2, j : j + 2 * h - 1 : 2] for i in range(3) for j in range(3)], 0
    )
    for stage, _, s, blocks in STAGES:
        for block in blocks:
            base = f"{stage}{block}_branch"
            stride = s if block == "a" else 1
            out = relu(bn(conv(x, f"res{base}2a", stride), f"bn{base}2a"))
            out = relu(bn(conv(out, f"res{base}2b", same=True), f"bn{base}2b"))
            out = bn(conv(out, f"res{base}2c"), f"bn{base}2c")
            short = bn(conv(x, f"res{base}1", stride), f"bn{base}1") if block == "a" else x
            x = relu(out + short)
    x = x.reshape(x.shape[0], 1, 2, 1, 2, -1).mean(axis=(2, 4)).reshape(x.shape[0], -1)  # 2x2 avg
    dense = w[next(n for n, _ in layers if n.startswith("fc"))]
    return x @ dense["kernel"] + dense["bias"]


@pytest.fixture(scope="module")
def course_layers():
    return keras_layers(6, np.random.default_rng(0))


@pytest.mark.slow
def test_keras_h5_of_the_course_loads_with_equal_outputs(tmp_path, course_layers):
    path = tmp_path / "signs_resnet50.h5"
    write_keras_h5(path, course_layers)  # as model.save writes it
    ours = load_weights(create_model("resnet50_signs"), path).eval()
    pixels = np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 3))
    expected = keras_forward(course_layers, pixels)
    with torch.no_grad():
        got = ours(torch.from_numpy(pixels.transpose(0, 3, 1, 2)).float()).double().numpy()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 1e-4 * scale, (np.abs(got - expected).max(), scale)
    assert (got.argmax(1) == expected.argmax(1)).all()

    # save_weights's layout (the layers at the root), its attributes in chunks: the same tensors
    other = tmp_path / "weights_only.h5"
    write_keras_h5(other, course_layers, whole_model=False, chunked=True)
    again = load_weights(create_model("resnet50_signs"), other).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in ours.state_dict().items())


def test_keras_h5_errors_name_the_file_and_the_layer(tmp_path, course_layers):
    layers = course_layers
    bad = tmp_path / "extra.h5"
    write_keras_h5(bad, [*layers[:3], ("dense_7", {"kernel": np.zeros((3, 3), "f4")})])
    with pytest.raises(
        CheckpointError, match="Keras layer 'dense_7' has no place in resnet50_signs"
    ):
        load_weights(create_model("resnet50_signs"), bad)
    short = tmp_path / "short.h5"
    write_keras_h5(short, layers[:3])  # the stem only
    with pytest.raises(
        CheckpointError, match=r"weights do not fit the model \(missing: bn1.weight"
    ):
        load_weights(create_model("resnet50_signs"), short)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(CheckpointError, match=r"junk\.h5: not a readable Keras HDF5 weight file"):
        load_weights(create_model("resnet50_signs"), tmp_path / "junk.h5")
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    with pytest.raises(CheckpointError, match="no Keras weights"):
        load_weights(create_model("resnet50_signs"), tmp_path / "empty.h5")
