"""train.mix: mixup and cutmix of a batch: targets that sum to one, a seeded, exact blend."""

import pytest
import torch

from resnetlab.train.mix import mix_batch

K = 10


def _batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(K, 3, 8, 8, generator=gen), torch.arange(K)  # one image of each class


def _mix(images, labels, **kw):
    args = {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "seed": 3, "epoch": 1, "batch": 2} | kw
    return mix_batch(images, labels, K, **args)


def test_mixup_blends_images_and_labels_by_the_same_weight():
    images, labels = _batch()
    mixed, targets = _mix(images, labels, mixup_alpha=0.4)
    torch.testing.assert_close(targets.sum(1), torch.ones(K))
    # labels are 0..K-1: row i holds lam at i and 1 - lam at its partner j (j = i: 1 at i)
    lams = {round(targets[i, i].item(), 6) for i in range(K) if targets[i, i] < 1}
    assert len(lams) == 1  # one blend weight for the whole batch
    lam = lams.pop()
    for i in range(K):
        others = [int(j) for j in targets[i].nonzero() if int(j) != i]
        assert len(others) <= 1
        j = others[0] if others else i
        expected = lam * images[i] + (1 - lam) * images[j]
        torch.testing.assert_close(mixed[i], expected, rtol=1e-5, atol=1e-5)


def test_cutmix_pastes_one_box_and_labels_by_its_area():
    images, labels = _batch()
    mixed, targets = _mix(images, labels, cutmix_alpha=1.0, batch=5)
    torch.testing.assert_close(targets.sum(1), torch.ones(K))
    changed = (mixed != images).any(1).any(0)  # (H, W): pixels taken from another image
    rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
    if changed.any():  # a rectangle: every pixel inside its bounding box changed
        box = changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()
    kept = 1 - changed.sum().item() / changed.numel()
    own = targets[torch.arange(K), labels]
    moved = own < 1
    assert torch.allclose(own[moved], torch.full_like(own[moved], kept), atol=1e-6)


def test_the_draw_depends_on_seed_epoch_and_batch_only():
    images, labels = _batch()
    a = _mix(images, labels, mixup_alpha=0.4, cutmix_alpha=1.0)
    b = _mix(images.clone(), labels, mixup_alpha=0.4, cutmix_alpha=1.0)
    c = _mix(images, labels, mixup_alpha=0.4, cutmix_alpha=1.0, batch=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_channels_last_batches_stay_channels_last():
    images, labels = _batch()
    cl = images.contiguous(memory_format=torch.channels_last)
    for kw in ({"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}):
        mixed, _ = _mix(cl, labels, **kw)
        assert mixed.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(mixed, _mix(images, labels, **kw)[0])


@pytest.mark.parametrize("both", [False, True])
def test_every_target_row_is_a_distribution(both):
    images, labels = torch.randn(64, 3, 8, 8), torch.randint(0, K, (64,))
    for batch in range(5):
        kw = {"mixup_alpha": 0.2, "cutmix_alpha": 1.0 if both else 0.0, "batch": batch}
        _, targets = _mix(images, labels, **kw)
        assert targets.shape == (64, K) and (targets >= 0).all()
        torch.testing.assert_close(targets.sum(1), torch.ones(64))
