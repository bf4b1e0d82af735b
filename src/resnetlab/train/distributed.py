"""Data-parallel training across processes (``torchrun --nproc-per-node N -m resnetlab train``).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; we join the process group (gloo on CPU, NCCL on
GPU), wrap the model in DDP and give each rank its shard of every epoch. ``batch_size`` is the
GLOBAL batch: each rank takes ``batch_size / world_size`` samples a step, and DDP averages the
gradients, so N ranks take the same steps as one process with the whole batch. Batch statistics
stay per rank unless ``sync_bn`` is on.
"""

from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from resnetlab.errors import ConfigError

# A peer that died mid-collective makes the others fail after this long instead of hanging.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """Where this process stands in the run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world_from_env() -> World:
    """The rank and world size torchrun put in the environment (1 process without it)."""
    try:
        return World(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None


def init(world: World, device: torch.device) -> None:
    """Join the process group when there is more than one process."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=TIMEOUT)


def shutdown(world: World) -> None:
    """Leave the process group together (a no-op when none was joined).

    The barrier keeps rank 0, which hosts the rendezvous store, alive until every rank is done
    with the group; a rank that tore its group down after rank 0 had gone could hang.
    """
    if dist.is_initialized():
        gc.collect()  # free anything else that still refers to the group
        dist.barrier()
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """Sum ``t`` over the ranks, in place (returned for chaining); ``t`` may live on the CPU."""
    return _all_reduce(t, world, dist.ReduceOp.SUM)


def all_reduce_min(t: torch.Tensor, world: World) -> torch.Tensor:
    """The minimum of ``t`` over the ranks, in place (returned for chaining)."""
    return _all_reduce(t, world, dist.ReduceOp.MIN)


def _all_reduce(t: torch.Tensor, world: World, op: dist.ReduceOp) -> torch.Tensor:
    if world.distributed:
        on_cuda = dist.get_backend() == "nccl" and t.device.type != "cuda"
        on_backend = t.cuda() if on_cuda else t  # NCCL reduces GPU tensors only
        dist.all_reduce(on_backend, op=op)
        if on_backend is not t:
            t.copy_(on_backend)
    return t


def wrap(model: nn.Module, world: World, device: torch.device, sync_bn: bool) -> nn.Module:
    """The model as each rank trains it: with global batch norm if asked, in DDP if distributed."""
    if not world.distributed:
        return model
    if sync_bn:
        # torch's SyncBatchNorm runs on GPUs only; on CPU we use GlobalBatchNorm2d below.
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            _use_global_batch_norm(model, device)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper and/or a ``torch.compile`` wrapper."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def broadcast_buffers(model: nn.Module, world: World) -> None:
    """Give every rank rank 0's BN statistics (each rank updated its own in the last step)."""
    if world.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span the global batch of all ranks.

    The same function as ``nn.SyncBatchNorm``, written with autograd-aware all-reduces so that it
    also runs on CPU with gloo. The backward pass of each all-reduce sums the gradients of all
    ranks, so the gradient of every input is that of the global batch's loss, as on one process.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        xf = x.float()  # (B, C, H, W)
        local = torch.cat([xf.sum(dims), xf.new_tensor([x.numel() // x.shape[1]])])
        total = dist_fn.all_reduce(local)  # (C + 1,): per-channel sums and the global count
        count = total[-1]
        mean = total[:-1] / count  # (C,)
        centred = xf - mean[None, :, None, None]
        var = dist_fn.all_reduce(centred.square().sum(dims)) / count  # (C,), biased, two-pass
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count.detach())
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor):
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
        unbiased = var * count / (count - 1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def _use_global_batch_norm(module: nn.Module, device: torch.device) -> None:
    """Swap every ``BatchNorm2d`` inside ``module`` for a ``GlobalBatchNorm2d`` with its state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            new.load_state_dict(child.state_dict())
            setattr(module, name, new.to(device))
        else:
            _use_global_batch_norm(child, device)
