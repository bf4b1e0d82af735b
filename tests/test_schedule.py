"""The learning rate of every iteration, against the paper's recipe and closed forms."""

import math

import pytest

from resnetlab.train import LRSchedule, load_config
from resnetlab.train.config import ScheduleConfig
from resnetlab.train.schedule import ERROR_AVERAGE_DECAY


def _schedule(preset, model="resnet56", total=None):
    cfg = load_config(preset=preset, sets=[f"model.name={model}"])
    return LRSchedule(cfg.schedule, cfg.optim.lr, total or cfg.iterations)


@pytest.mark.parametrize(
    ("iteration", "lr"),
    [(0, 0.1), (31999, 0.1), (32000, 0.01), (47999, 0.01), (48000, 0.001), (63999, 0.001)],
)
def test_cifar_paper_divides_by_10_at_32k_and_48k(iteration, lr):
    # §4.2: "start with a learning rate of 0.1, divide it by 10 at 32k and 48k iterations"
    assert _schedule("cifar-paper").lr_at(iteration) == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize(
    ("iteration", "lr"), [(0, 0.1), (149999, 0.1), (150000, 0.01), (300000, 0.001), (450000, 1e-4)]
)
def test_imagenet_paper_steps(iteration, lr):
    assert _schedule("imagenet-paper", "resnet50").lr_at(iteration) == pytest.approx(lr)


def test_resnet110_holds_0_01_until_training_error_is_below_80_percent():
    schedule = _schedule("cifar-paper", "resnet110")
    errors = [0.9] * 30 + [0.5] * 30
    average, expected_switch = None, None
    for i, err in enumerate(errors):  # the rule's running average, computed here independently
        average = (
            err
            if average is None
            else ERROR_AVERAGE_DECAY * average + (1 - ERROR_AVERAGE_DECAY) * err
        )
        if average < 0.8:
            expected_switch = i
            break
    lrs = []
    for err in errors:
        lrs.append(schedule.lr_at(len(lrs)))
        schedule.observe(err)
    assert lrs[: expected_switch + 1] == [0.01] * (expected_switch + 1)
    assert lrs[expected_switch + 1 :] == [0.1] * (len(errors) - expected_switch - 1)
    assert schedule.lr_at(32000) == pytest.approx(0.01)  # the milestones are unchanged


def test_the_warm_up_rule_resumes_from_its_state():
    a = _schedule("cifar-paper", "resnet110")
    for _ in range(5):
        a.observe(0.85)
    b = _schedule("cifar-paper", "resnet110")
    b.load_state_dict(a.state_dict())
    for err in (0.7, 0.6, 0.6, 0.5, 0.5):
        a.observe(err)
        b.observe(err)
        assert a.lr_at(10) == b.lr_at(10) and a.error_average == b.error_average


def test_linear_warmup_then_cosine_to_final_lr():
    cfg = ScheduleConfig(kind="cosine", warmup_iterations=10, warmup_lr=0.0, final_lr=0.001)
    s = LRSchedule(cfg, lr=0.1, total=110)
    assert [s.lr_at(i) for i in (0, 5, 10)] == pytest.approx([0.0, 0.05, 0.1])
    assert s.lr_at(60) == pytest.approx((0.1 + 0.001) / 2)
    assert s.lr_at(35) == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert s.lr_at(110) == pytest.approx(0.001)


def test_onecycle_rises_over_its_warmup_fraction_then_falls_linearly():
    cfg = ScheduleConfig(kind="onecycle", warmup_fraction=0.2, warmup_lr=0.02, final_lr=0.0)
    s = LRSchedule(cfg, lr=0.2, total=100)
    assert s.warmup == 20
    assert [s.lr_at(i) for i in (0, 10, 20, 60, 100)] == pytest.approx([0.02, 0.11, 0.2, 0.1, 0])


def test_constant_and_step_with_warmup():
    s = LRSchedule(ScheduleConfig(kind="constant"), lr=0.3, total=50)
    assert {s.lr_at(i) for i in range(50)} == {0.3}
    s = LRSchedule(ScheduleConfig(milestones=[10], warmup_iterations=4, warmup_lr=0.02), 0.1, 20)
    assert [s.lr_at(i) for i in (0, 2, 4, 9, 10)] == pytest.approx([0.02, 0.06, 0.1, 0.1, 0.01])
