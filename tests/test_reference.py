"""The benchmark references (benchmarks/reference_*.py) compute the same function as our models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench_support import load_benchmark
from resnetlab.data.augment import Normalize, crop_flip
from resnetlab.models import create_model

reference_train = load_benchmark("reference_train")
reference_infer = load_benchmark("reference_infer")


def randomize_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)


def assert_same_function(ours: nn.Module, ref: nn.Module, x: torch.Tensor, rename) -> None:
    """Equal outputs in eval and train mode, equal gradients, equal BN statistics after."""
    for train in (False, True):
        ours.train(train)
        ref.train(train)
        ours.zero_grad()
        ref.zero_grad()
        a, b = ours(x), ref(x)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item())
        if train:
            F.cross_entropy(a, torch.arange(len(x)) % a.shape[1]).backward()
            F.cross_entropy(b, torch.arange(len(x)) % b.shape[1]).backward()
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        q = ref_params[rename(name)]
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5 * p.grad.abs().max())
    ref_buffers = dict(ref.named_buffers())
    for name, buf in ours.named_buffers():
        torch.testing.assert_close(ref_buffers[rename(name)], buf, rtol=1e-5, atol=1e-6)


def test_reference_resnet20_computes_our_resnet20():
    ours = create_model("resnet20")
    randomize_bn(ours)
    ref = reference_train.ResNet20()
    reference_train.load_resnetlab_weights(ref, ours.state_dict())
    rename = lambda n: n.replace("fc.", "linear.", 1) if n.startswith("fc.") else n  # noqa: E731
    assert_same_function(ours, ref, torch.randn(4, 3, 32, 32), rename)


def test_reference_resnet50_computes_our_resnet50():
    ours = create_model("resnet50")
    randomize_bn(ours)
    ref = reference_infer.ResNet50()
    ref.load_state_dict(ours.state_dict())
    # 32x32 keeps it quick (1x1 maps in layer4); the function is the same at every input size.
    assert_same_function(ours, ref, torch.randn(2, 3, 32, 32), lambda n: n)
    out = reference_infer.predict(ref, torch.randn(1, 3, 32, 32))
    assert not ref.training and out.shape == (1, 1000) and not out.requires_grad


@pytest.mark.parametrize(
    ("dy", "dx", "flip"), [(0, 0, False), (8, 8, True), (3, 6, True), (4, 4, False)]
)
def test_reference_augmentation_equals_the_device_loaders(dy, dx, flip):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=g)
    ours = crop_flip(images, torch.tensor([dy]), torch.tensor([dx]), torch.tensor([flip]), pad=4)
    ours = Normalize(reference_train.CIFAR_MEAN, reference_train.CIFAR_STD, torch.device("cpu"))(
        ours
    )[0]
    hwc = images[0].permute(1, 2, 0).numpy()
    ref = reference_train.to_tensor(reference_train.augment(hwc, dy, dx, flip))
    torch.testing.assert_close(ref, ours, rtol=1e-5, atol=1e-5)


def test_reference_loader_and_step_train_the_model():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 40)
    loader = reference_train.make_loader(reference_train.AugmentedCIFAR(images, labels), 16)
    batches = list(loader)
    assert len(batches) == 2  # 40 // 16, the partial batch dropped
    x, y = batches[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    model = reference_train.ResNet20()
    opt = reference_train.make_optimizer(model)
    before = model.conv1.weight.detach().clone()
    loss = reference_train.train_step(model, opt, x, y)
    assert np.isfinite(loss) and not torch.equal(before, model.conv1.weight)
