"""The running statistics of the training steps, kept on the training device.

A step adds its loss sum and error count to tensors on the device, so that it never waits for
the device (a ``.item()`` per step is a host sync per step on a GPU). The host reads them only
when a train record is due, before an evaluation or a checkpoint, and while the ResNet-110
warm-up rule watches the batch error (§4.2); then the sums of all ranks are added up.

A non-finite loss is remembered on the device too, with the iteration it first appeared at, so
that the run stops with the first bad iteration named before anything is evaluated or written.
"""

from __future__ import annotations

import math
import time

import torch

from resnetlab.train import distributed
from resnetlab.train.distributed import World

NO_BAD_STEP = math.inf


class IntervalMeter:
    """Sums over the training batches since the last train record.

    The sums flushed to the host (``loss``, ``errors``, ``images``, ``seconds``, over all ranks)
    are what a checkpoint saves, so a resumed run reports the interval it was in the middle of
    exactly as a straight run would. ``pending`` holds this rank's device sums since the last
    flush.
    """

    def __init__(self) -> None:
        self.loss = self.errors = self.images = self.seconds = 0.0
        self.pending: torch.Tensor | None = None  # (2,) float64: loss sum, errors
        self.pending_images = 0
        # (2,) float64: the first iteration whose loss was not finite (inf: none yet), that loss
        self.bad: torch.Tensor | None = None

    def add(
        self, loss_sum: torch.Tensor, errors: torch.Tensor, n: int, iteration: int, seconds: float
    ) -> None:
        """Add one step of this rank without a host sync.

        Args:
            loss_sum: the batch's summed loss, a 0-dim tensor on the device.
            errors: the batch's number of wrong top-1 answers, a 0-dim tensor on the device.
            n: the batch's size on this rank.
            iteration: the step's index (steps done before it), named if its loss is not finite.
            seconds: the host's time in the step (the device may still be working on it).
        """
        step = torch.stack([loss_sum.detach().double(), errors.double()])
        if self.pending is None:
            self.pending = torch.zeros_like(step)
            self.bad = torch.tensor([NO_BAD_STEP, 0.0], dtype=torch.float64, device=step.device)
        self.pending += step
        self.pending_images += n
        self.seconds += seconds
        first = ~torch.isfinite(step[0]) & (self.bad[0] == NO_BAD_STEP)
        here = torch.stack([torch.full_like(step[0], iteration), step[0] / n])
        self.bad = torch.where(first, here, self.bad)

    def first_bad_step(self, world: World) -> tuple[int, float] | None:
        """(iteration, mean loss) of the first step whose loss was not finite on any rank.

        The loss is this rank's (NaN where another rank went bad first). A host sync; every rank
        must call it.
        """
        at, loss = self.bad.tolist() if self.bad is not None else (NO_BAD_STEP, 0.0)
        first = distributed.all_reduce_min(torch.tensor([at], dtype=torch.float64), world).item()
        if first == NO_BAD_STEP:
            return None
        return int(first), loss if at == first else math.nan

    def flush(self, world: World) -> float:
        """Add every rank's device sums to the host sums (a host sync; every rank must call it).

        Returns:
            The seconds spent waiting for the device: the backlog of training steps, which the
            caller counts as training time (it is also added to this interval's ``seconds``).
        """
        start = time.perf_counter()
        if self.pending is not None:
            local = torch.cat([self.pending.cpu(), torch.tensor([float(self.pending_images)])])
            loss, errors, images = distributed.all_reduce_sum(local, world).tolist()
            self.loss, self.errors = self.loss + loss, self.errors + errors
            self.images += images
            self.pending.zero_()
            self.pending_images = 0
        waited = time.perf_counter() - start
        self.seconds += waited
        return waited

    def read(self, world: World) -> dict[str, float]:
        """Means since the last read, then start over (``flush`` first)."""
        out = {
            "train_loss": self.loss / self.images,
            "train_error": self.errors / self.images,
            "img_per_s": round(self.images / max(self.seconds, 1e-9), 1),
        }
        self.loss = self.errors = self.images = self.seconds = 0.0
        return out

    def state_dict(self) -> dict[str, float]:
        """The host sums (``flush`` first: the device sums are not in it)."""
        return {k: getattr(self, k) for k in ("loss", "errors", "images", "seconds")}

    def load_state_dict(self, state: dict[str, float]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
