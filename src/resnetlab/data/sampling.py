"""Which samples each rank sees in each epoch, from (seed, epoch) alone.

Both loaders draw their order here, so a resumed run (``epoch(e, start=k)``) and every rank of a
distributed run agree on it without talking to each other.
"""

from __future__ import annotations

import numpy as np
import torch

from resnetlab.errors import ConfigError

# Separate random streams, so that changing e.g. the world size never changes the augmentation.
ORDER_STREAM = 0
AUGMENT_STREAM = 1


def derive_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed that depends on (seed, epoch, stream) and is well mixed across all three."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, epoch, stream])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """A CPU generator for one epoch's stream (CPU draws are the same on every device)."""
    return torch.Generator().manual_seed(derive_seed(seed, epoch, stream))


def check_shard(batch_size: int, rank: int, world_size: int) -> None:
    """Raise ``ConfigError`` unless a loader's batch size is positive and its rank in range."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
    check_rank(rank, world_size)


def check_rank(rank: int, world_size: int) -> None:
    """Raise ``ConfigError`` unless ``0 <= rank < world_size``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(
            f"rank must be in [0, world_size); got rank={rank}, world_size={world_size}"
        )


def epoch_indices(
    n: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """The sample indices one rank visits in one epoch, in order.

    With ``shuffle`` the epoch's permutation is drawn from (seed, epoch); it is cut to a multiple
    of ``world_size`` (so every rank has the same number of samples) and dealt out round-robin, so
    the ranks' shards are disjoint. Without ``shuffle`` the order is ``0..n-1`` and every sample is
    kept: rank r takes r, r + world_size, ...

    Returns:
        (M,) int64 indices.
    """
    check_rank(rank, world_size)
    if not shuffle:
        return torch.arange(rank, n, world_size)
    perm = torch.randperm(n, generator=generator(seed, epoch, ORDER_STREAM))
    usable = (n // world_size) * world_size
    return perm[:usable][rank::world_size]


def batch_slices(count: int, batch_size: int, drop_last: bool) -> list[slice]:
    """Slices cutting ``count`` items into batches; the last partial one is dropped on request."""
    stop = (count // batch_size) * batch_size if drop_last else count
    return [slice(i, min(i + batch_size, count)) for i in range(0, stop, batch_size)]
