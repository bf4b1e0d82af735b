"""torchrun with 2 CPU processes (gloo): the same steps as one process with the same global batch.

Each rank takes 16 of the global 32 images a step (the shards interleave the epoch's order, so
the two halves together are the single process's batch) and DDP averages the gradients. With
sync_bn the batch statistics also span both halves, so the runs differ only by float rounding;
without it each rank normalises with its own 16 images, and the weights really differ.
"""

import pytest
import torch

from train_runs import TINY, checkpoint, train, train_until_killed

pytestmark = pytest.mark.slow

# Steps compared with the single process. Float rounding differences grow step by step as
# training amplifies them (measured: 2e-7 after 4 steps, 1e-6 after 8, 1.5e-4 after 12), while
# per-rank statistics differ by 0.04 after 8 steps.
K = 8
N = 90  # steps of the run that is killed and resumed
ARGS = [*TINY, "--batch-size", "32", "--lr", "0.02", "--set", "checkpoint_every=4",
        "--set", "keep_last=100", "--set", "eval_every=30"]  # fmt: skip


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A 2-process run with global batch norm, straight through N steps."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    train([*ARGS, "--iterations", str(N), "--set", "sync_bn=true", "--out", str(out)], nproc=2)
    return out


def _params(state):
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(ddp_run, tmp_path):
    single = tmp_path / "single"
    train([*ARGS, "--iterations", str(K), "--out", str(single)])
    one = checkpoint(single)["state"]["model"]
    two = checkpoint(ddp_run, f"step-{K:08d}.pt")["state"]["model"]
    assert checkpoint(ddp_run)["config"]["batch_size"] == 32
    for key, value in _params(one).items():
        torch.testing.assert_close(two[key], value, rtol=1e-4, atol=2e-5, msg=key)


def test_without_sync_bn_the_batch_statistics_are_per_rank(ddp_run, tmp_path):
    per_rank = tmp_path / "per_rank"
    train([*ARGS, "--iterations", str(K), "--out", str(per_rank)], nproc=2)
    a = checkpoint(per_rank)["state"]["model"]
    b = checkpoint(ddp_run, f"step-{K:08d}.pt")["state"]["model"]
    gap = max((a[k] - b[k]).abs().max().item() for k in _params(a))
    assert gap > 1e-2  # far beyond float rounding: the two runs compute different things


def test_a_killed_two_process_run_resumes_to_the_same_weights(ddp_run, tmp_path):
    killed = tmp_path / "killed"
    args = [*ARGS, "--iterations", str(N), "--set", "sync_bn=true", "--out", str(killed)]
    train_until_killed(args, killed / "checkpoints" / "step-00000040.pt", nproc=2)
    assert 0 < checkpoint(killed)["progress"]["iteration"] < N
    train(["--resume", str(killed)], nproc=2)
    a, b = checkpoint(ddp_run), checkpoint(killed)
    assert b["progress"]["iteration"] == N
    for key, value in a["state"]["model"].items():
        assert torch.equal(value, b["state"]["model"][key]), key
