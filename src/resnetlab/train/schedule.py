"""Learning rate as a function of the iteration, plus the ResNet-110 warm-up rule (§4.2).

``lr_at(i)`` is the rate of the optimizer step that takes the model from ``i`` to ``i + 1`` steps
done: with the paper's milestones 32k/48k, steps 0..31999 use 0.1 and step 32000 uses 0.01.
"""

from __future__ import annotations

import math

from resnetlab.train.config import ScheduleConfig

# The warm-up rule watches an exponential average of the batch training error: one batch is too
# noisy to compare with 80%, and an average over ~10 batches reacts within the ~400 iterations
# the paper reports.
ERROR_AVERAGE_DECAY = 0.9


class LRSchedule:
    """The learning rate of every iteration of one run.

    Args:
        cfg: the schedule section of the run config.
        lr: the peak rate (``optim.lr``).
        total: the run's length in iterations (cosine and one-cycle end there).
    """

    def __init__(self, cfg: ScheduleConfig, lr: float, total: int) -> None:
        self.cfg, self.lr, self.total = cfg, lr, total
        self.warmup = cfg.warmup_iterations or round(cfg.warmup_fraction * total)
        # State of the train-error rule; both are saved in checkpoints.
        self.error_average: float | None = None
        self.rule_done = cfg.warmup_until_train_error is None

    def lr_at(self, iteration: int) -> float:
        """The learning rate for the step taken after ``iteration`` steps."""
        cfg = self.cfg
        if not self.rule_done:
            return cfg.warmup_lr
        if iteration < self.warmup:
            return cfg.warmup_lr + (self.lr - cfg.warmup_lr) * iteration / self.warmup
        if cfg.kind == "constant":
            return self.lr
        if cfg.kind == "step":
            passed = sum(iteration >= m for m in cfg.milestones)
            return self.lr * cfg.gamma**passed
        progress = min(1.0, (iteration - self.warmup) / max(1, self.total - self.warmup))
        if cfg.kind == "cosine":
            cosine = 0.5 * (1 + math.cos(math.pi * progress))  # 1 -> 0
            return cfg.final_lr + (self.lr - cfg.final_lr) * cosine
        return self.lr + (cfg.final_lr - self.lr) * progress  # onecycle: the linear ramp down

    def observe(self, train_error: float) -> None:
        """Feed the training error of the batch just taken (the ResNet-110 rule needs it)."""
        if self.rule_done:
            return
        if self.error_average is None:
            self.error_average = train_error
        else:
            decay = ERROR_AVERAGE_DECAY
            self.error_average = decay * self.error_average + (1 - decay) * train_error
        self.rule_done = self.error_average < self.cfg.warmup_until_train_error

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue the rule exactly."""
        return {"error_average": self.error_average, "rule_done": self.rule_done}

    def load_state_dict(self, state: dict) -> None:
        self.error_average = state["error_average"]
        self.rule_done = state["rule_done"]
