"""The trained nets that the lesion and landscape experiments measure.

They come either from ``--runs`` (run folders, meaning their ``checkpoints/last.pt``, or checkpoint
files), or from training plain and residual CIFAR nets (§4.2) first with the experiment's recipe,
skipping finished runs and resuming unfinished ones as every experiment does. A net is known by
its name (the run folder's), its model (``plain56``), its seed and the digest of its checkpoint's
tensors, so that a kept result of an older checkpoint is never taken for the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from resnetlab.analysis.netinfo import depth_of, is_residual, model_label
from resnetlab.errors import CheckpointError, ConfigError
from resnetlab.evaluation.loading import load_trained
from resnetlab.experiments.common import train_and_collect
from resnetlab.experiments.results import ModelResult
from resnetlab.experiments.runner import Recipe, RunSpec, cifar_depths, cifar_runs


@dataclass(frozen=True)
class Net:
    """A trained net to measure.

    Attributes:
        name: its name in files and progress lines: the run folder's (``plain56-seed0``).
        label: its model (``plain56``, ``resnet56``; ``-nobn`` without BN); one colour per label.
        depth: the paper's depth.
        residual: ResNet or plain twin.
        seed: the seed it was trained with.
        checkpoint: the checkpoint file.
        digest: the digest of the checkpoint's tensors.
    """

    name: str
    label: str
    depth: int
    residual: bool
    seed: int
    checkpoint: Path
    digest: str

    def settings(self) -> dict:
        """What decides a result about this net: the digest of its weights (not the path, which
        may be given another way on a rerun)."""
        return {"net": self.name, "digest": self.digest}


def net_of(path: str | Path, name: str | None = None) -> Net:
    """The net of a run folder or checkpoint file.

    Raises:
        CheckpointError: a missing or damaged checkpoint.
        ConfigError: a checkpoint of a network that is not a resnetlab ResNet or plain net.
    """
    model, ckpt, resolved = load_trained(path)
    try:
        label, depth, residual = model_label(model), depth_of(model), is_residual(model)
    except ConfigError:
        raise ConfigError(f"{resolved}: not a net with residual or plain blocks") from None
    digest = ckpt.get("digest", {})
    return Net(
        name=name or _run_name(resolved),
        label=label,
        depth=depth,
        residual=residual,
        seed=int(ckpt["config"]["seed"]),
        checkpoint=resolved,
        digest=str(digest.get("sha256", "")) if isinstance(digest, dict) else "",
    )


def given_nets(paths: Sequence[str | Path]) -> list[Net]:
    """The nets of ``--runs``, in the order given.

    Raises:
        ConfigError: two of them with one name (their results would share a file).
    """
    nets = [net_of(p) for p in paths]
    names = [n.name for n in nets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"--runs: two nets are named {name!r}; give each run its own folder")
    return nets


def trained_nets(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe: Recipe,
    out: Path,
    jobs: int,
    log: Callable[[str], None],
) -> tuple[list[Net], list[ModelResult], list[RunSpec]]:
    """Train (or reuse) the plain nets and ResNets of ``depths`` in ``out``, as the degradation
    experiment does, and return them with their final errors and run specs."""
    runs = cifar_runs(("plain", "resnet"), depths, seeds)
    results = train_and_collect(runs, recipe, out, jobs, log)
    return [net_of(out / r.folder, r.folder) for r in runs], results, runs


@dataclass(frozen=True)
class TrainedNets:
    """The nets of an experiment and, when it trained them, their runs.

    Attributes:
        nets: the nets, in order (plain nets first, shallow to deep, when trained here).
        results: the final errors of the runs it trained (``None`` for ``--runs``).
        runs: those runs (``None`` for ``--runs``).
    """

    nets: list[Net]
    results: list[ModelResult] | None = None
    runs: list[RunSpec] | None = None


def get_nets(
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe: Recipe,
    out: Path,
    runs: Sequence[str | Path] | None,
    jobs: int,
    log: Callable[[str], None],
) -> TrainedNets:
    """The nets of ``runs`` if given, else those of ``trained_nets``."""
    if runs:
        log("measuring the nets of --runs (each with its own data; the recipe is not used)")
        return TrainedNets(given_nets(runs))
    nets, results, specs = trained_nets(cifar_depths(depths), seeds, recipe, out, jobs, log)
    return TrainedNets(nets, results, specs)


def analysis_threads(jobs: int) -> int:
    """Intra-op threads of each of ``jobs`` measurements side by side (a share of the CPU)."""
    return max(1, torch.get_num_threads() // max(1, jobs))


def load_net(net: Net, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The net's model (eval mode, on ``device``) and checkpoint.

    Raises:
        CheckpointError: the checkpoint changed since the net was read.
    """
    model, ckpt, _ = load_trained(net.checkpoint, device=device)
    digest = ckpt.get("digest", {})
    if not isinstance(digest, dict) or str(digest.get("sha256", "")) != net.digest:
        raise CheckpointError(f"{net.checkpoint}: changed while the experiment ran")
    return model, ckpt


def twins(nets: Sequence[Net]) -> list[tuple[Net, Net]]:
    """Pairs (plain, residual) of one depth and seed, shallow to deep."""
    found = []
    for plain in (n for n in nets if not n.residual):
        for res in (n for n in nets if n.residual):
            if (res.depth, res.seed) == (plain.depth, plain.seed):
                found.append((plain, res))
                break
    return sorted(found, key=lambda pair: (pair[0].depth, pair[0].seed))


def _run_name(checkpoint: Path) -> str:
    """``plain56-seed0`` for ``plain56-seed0/checkpoints/last.pt``; the run folder's name with the
    file's stem for another checkpoint of it; the file's stem for a file elsewhere."""
    checkpoint = checkpoint.resolve()  # "." has no name; its absolute path has
    if checkpoint.parent.name == "checkpoints":
        run = checkpoint.parent.parent.name
        return run if checkpoint.stem == "last" else f"{run}-{checkpoint.stem}"
    return checkpoint.stem
