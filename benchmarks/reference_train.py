"""The training reference: CIFAR ResNet-20 as a typical PyTorch user writes it, independent of
resnetlab.

Eager fp32, NCHW, a ``torch.utils.data.Dataset`` that pads, crops, flips, converts and normalises
one image at a time in ``__getitem__``, and a ``DataLoader`` that batches them, as in the PyTorch
CIFAR-10 tutorial and the well-known community ResNet-20 re-implementations. The network follows
He et al. 2015 §4.2 (3x3 stem with 16 filters, three stages of three basic blocks, option A
shortcuts). tests/test_reference.py checks that it computes the same function as
``resnetlab.create_model("resnet20")`` given the same weights.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class ShortcutA(nn.Module):
    """Option A: every other pixel, and zero channels appended after the existing ones."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, self.extra))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA(planes - in_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes: int = 10, num_blocks: int = 3) -> None:
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks, stride=1)
        self.layer2 = self._make_layer(32, num_blocks, stride=2)
        self.layer3 = self._make_layer(64, num_blocks, stride=2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def load_resnetlab_weights(reference: ResNet20, state_dict: dict) -> None:
    """Load a ``resnetlab`` resnet20 state dict: the names differ only in ``fc`` -> ``linear``."""
    renamed = {
        k.replace("fc.", "linear.", 1) if k.startswith("fc.") else k: v
        for k, v in state_dict.items()
    }
    reference.load_state_dict(renamed)


def augment(image: np.ndarray, dy: int, dx: int, flip: bool, pad: int = 4) -> np.ndarray:
    """Zero-pad an (H, W, C) uint8 image by ``pad``, crop (H, W) at (dy, dx), mirror if ``flip``."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    crop = padded[dy : dy + h, dx : dx + w]
    return crop[:, ::-1] if flip else crop


def to_tensor(image: np.ndarray, mean=CIFAR_MEAN, std=CIFAR_STD) -> torch.Tensor:
    """(H, W, C) uint8 -> normalised (C, H, W) float32, as ToTensor + Normalize do."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    mean_t = torch.tensor(mean).view(-1, 1, 1)
    std_t = torch.tensor(std).view(-1, 1, 1)
    return (x - mean_t) / std_t


class AugmentedCIFAR(Dataset):
    """Images as (N, H, W, C) uint8 (the layout of the CIFAR python pickles) and labels.

    ``__getitem__`` draws the crop offset and the flip of one image from torch's generator (which
    DataLoader seeds per worker), pads, crops, flips, converts and normalises it.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        train: bool = True,
    ) -> None:
        self.images, self.labels = images, labels
        self.mean, self.std, self.train = mean, std, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]
        if self.train:
            dy, dx = torch.randint(0, 9, (2,)).tolist()
            flip = bool(torch.randint(0, 2, ()).item())
            image = augment(image, dy, dx, flip)
        return to_tensor(image, self.mean, self.std), int(self.labels[i])


def make_loader(dataset: Dataset, batch_size: int = 128, workers: int = 0) -> DataLoader:
    """Shuffled batches, the last partial one dropped; ``workers`` decoding processes."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def make_optimizer(model: nn.Module, lr: float = 0.1) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 1e-4 (§4.2)."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor
) -> float:
    """One SGD step on one batch; returns the loss."""
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()
