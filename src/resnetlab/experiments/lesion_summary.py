"""The numbers of the lesion experiment per model, and the sentences they allow.

Veit et al. 2016 ("Residual Networks Behave Like Ensembles of Relatively Shallow Networks",
arXiv:1605.06431) find that deleting a single block of a trained ResNet barely changes its test
error, except for the blocks that downsample; that deleting a layer of a plain net (VGG) breaks it;
that the error rises smoothly with the number of blocks deleted; and that most of the gradient
comes from paths much shorter than the net. Each of those is a ``Finding`` here, made from the
measured numbers (means over seeds; a difference counts beyond the seeds' spread), so that it flips
or changes where this run's numbers differ. Blocks that change the shape (downsampling) are kept
apart from the same-shape blocks throughout.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from resnetlab.analysis.lesion import LesionStudy
from resnetlab.analysis.paths import PathGradients
from resnetlab.experiments.findings import Finding, Spread, choose, compare, spread, than


@dataclass(frozen=True)
class LesionModel:
    """One model's lesions over its seeds (errors are fractions; per-seed values in each
    ``Spread``).

    Attributes:
        label: ``plain56``, ``resnet56``.
        depth: the paper's depth.
        residual: ResNet or plain twin.
        seeds: the seeds of its nets.
        blocks: block names in network order.
        changes_shape: per block, whether it downsamples.
        baseline: the intact net's test error.
        single: per block, the test error with that block deleted.
        same_shape_rise: the mean rise of the error over the same-shape blocks' deletions.
        same_shape_worst: the highest error with one same-shape block deleted.
        downsampling_worst: the highest error with one downsampling block deleted.
        deletions: {k: mean error over the draws with k random same-shape blocks deleted}.
        swaps: {k: mean error over the draws with k random pairs of same-shape blocks swapped}.
        gradient_length: the gradient-weighted mean path length (ResNets), else ``None``.
        paths_mean_length: the mean length of all paths (n/2 for a ResNet of n blocks; n for a
            plain net, its one path).
        path_norm_short: one path's mean gradient norm at the shortest length measured.
        path_norm_long: the same at the longest length measured.
    """

    label: str
    depth: int
    residual: bool
    seeds: tuple[int, ...]
    blocks: tuple[str, ...]
    changes_shape: tuple[bool, ...]
    baseline: Spread
    single: tuple[Spread, ...]
    same_shape_rise: Spread
    same_shape_worst: Spread
    downsampling_worst: Spread
    deletions: dict[int, Spread]
    swaps: dict[int, Spread]
    gradient_length: Spread | None = None
    paths_mean_length: float = 0.0
    path_norm_short: Spread | None = None
    path_norm_long: Spread | None = None

    def worst_block(self, downsampling: bool) -> str:
        """The block of that kind whose deletion gives the highest mean error."""
        kind = [i for i, c in enumerate(self.changes_shape) if c == downsampling]
        return self.blocks[max(kind, key=lambda i: self.single[i].mean)]

    def to_dict(self) -> dict:
        none_or = lambda s: None if s is None else s.to_dict()  # noqa: E731
        return {
            "model": self.label,
            "depth": self.depth,
            "residual": self.residual,
            "seeds": list(self.seeds),
            "baseline_error": self.baseline.to_dict(),
            "single_deletion_error": {
                b: {"downsampling": c, **s.to_dict()}
                for b, c, s in zip(self.blocks, self.changes_shape, self.single, strict=True)
            },
            "same_shape_mean_rise": self.same_shape_rise.to_dict(),
            "same_shape_worst_error": self.same_shape_worst.to_dict(),
            "downsampling_worst_error": self.downsampling_worst.to_dict(),
            "error_against_k_deleted": {str(k): s.to_dict() for k, s in self.deletions.items()},
            "error_against_k_swapped": {str(k): s.to_dict() for k, s in self.swaps.items()},
            "gradient_weighted_path_length": none_or(self.gradient_length),
            "mean_path_length": self.paths_mean_length,
            "path_norm_shortest": none_or(self.path_norm_short),
            "path_norm_longest": none_or(self.path_norm_long),
        }


def summarise(
    studies: Sequence[LesionStudy],
    paths: Sequence[PathGradients | None],
    depths: Sequence[int],
    seeds: Sequence[int],
) -> list[LesionModel]:
    """Group the nets' studies (and path views, ``None`` for plain nets) by model label, in
    first-seen order; ``depths`` and ``seeds`` are the nets'."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(studies):
        groups.setdefault(s.label, []).append(i)
    return [
        _model(
            [studies[i] for i in idx],
            [paths[i] for i in idx],
            depths[idx[0]],
            [seeds[i] for i in idx],
        )
        for idx in groups.values()
    ]


def _model(studies: list[LesionStudy], paths: list, depth: int, seeds: list[int]) -> LesionModel:
    first = studies[0]
    same = np.array([not c for c in first.changes_shape])
    per_block = np.array([s.single_error for s in studies])  # (seeds, blocks)
    base = np.array([s.baseline_error for s in studies])
    n = len(first.blocks)
    model = dict(
        label=first.label,
        depth=depth,
        residual=first.residual,
        seeds=tuple(seeds),
        blocks=first.blocks,
        changes_shape=first.changes_shape,
        baseline=spread(base),
        single=tuple(spread(per_block[:, i]) for i in range(n)),
        same_shape_rise=spread(per_block[:, same].mean(1) - base),
        same_shape_worst=spread(per_block[:, same].max(1)),
        downsampling_worst=spread(per_block[:, ~same].max(1)) if (~same).any() else spread([]),
        deletions=_by_k([s.deletion_errors for s in studies]),
        swaps=_by_k([s.swap_errors for s in studies]),
        paths_mean_length=n / 2 if first.residual else float(n),
    )
    if all(p is not None for p in paths):
        model.update(_path_numbers(paths))
    return LesionModel(**model)


def _by_k(errors: list[dict[int, list[float]]]) -> dict[int, Spread]:
    ks = sorted(set.intersection(*(set(e) for e in errors))) if errors else []
    return {k: spread(float(np.mean(e[k])) for e in errors) for k in ks}


def _path_numbers(paths: list[PathGradients]) -> dict:
    lengths, shorts, longs = [], [], []
    for p in paths:
        total = p.total()
        ok = np.isfinite(total)
        k = np.arange(len(total))[ok]
        lengths.append(float((k * total[ok]).sum() / total[ok].sum()))
        shorts.append(float(p.mean_norm[ok][0]))
        longs.append(float(p.mean_norm[ok][-1]))
    return {
        "gradient_length": spread(lengths),
        "path_norm_short": spread(shorts),
        "path_norm_long": spread(longs),
    }


def _pct(s: Spread) -> str:
    return s.text(1, 100, "%")


def findings(models: Sequence[LesionModel]) -> list[Finding]:
    """Twins compared at each depth, then each model's own findings."""
    found = []
    for plain in (m for m in models if not m.residual):
        res = next((m for m in models if m.residual and m.depth == plain.depth), None)
        if res is not None:
            found.append(same_shape_pair(plain, res))
    for m in models:
        if m.downsampling_worst.values:
            found.append(worst_deletion(m))
        if len(m.deletions) > 1:
            found.append(k_trend(m, m.deletions, "deleting", "random same-shape blocks", "k_trend"))
        if len(m.swaps) > 1:
            found.append(
                k_trend(m, m.swaps, "swapping", "random pairs of same-shape blocks", "swap_trend")
            )
        if m.gradient_length is not None:
            found += [short_paths(m), path_decay(m)]
    return found


def same_shape_pair(plain: LesionModel, res: LesionModel) -> Finding:
    """Whose error one deleted same-shape block raises more."""
    way = compare(plain.same_shape_rise, res.same_shape_rise)
    word = choose(way, "more than", "less than", "about as much as (within the seeds' spread)")
    return Finding(
        f"Deleting one same-shape block hurts {plain.label} {word} {res.label}: it raises the "
        f"test error by {plain.same_shape_rise.text(1, 100)} vs {res.same_shape_rise.text(1, 100)} "
        f"points on average (intact: {_pct(plain.baseline)} and {_pct(res.baseline)}).",
        {
            "plain_mean_rise": plain.same_shape_rise.mean,
            "resnet_mean_rise": res.same_shape_rise.mean,
            "direction": way,
        },
        f"same_shape_pair:{plain.depth}",
    )


def worst_deletion(m: LesionModel) -> Finding:
    """Whether deleting a downsampling block hurts more than deleting any same-shape block."""
    way = compare(m.downsampling_worst, m.same_shape_worst)
    word = choose(way, "more than", "less than", "about as much as (within the seeds' spread)")
    return Finding(
        f"Deleting a downsampling block hurts {m.label} {word} deleting any same-shape block: "
        f"at worst {_pct(m.downsampling_worst)} test error ({m.worst_block(True)}) vs "
        f"{_pct(m.same_shape_worst)} ({m.worst_block(False)}); intact {_pct(m.baseline)}.",
        {
            "downsampling_worst": m.downsampling_worst.mean,
            "same_shape_worst": m.same_shape_worst.mean,
            "direction": way,
        },
        f"worst_deletion:{m.label}",
    )


def k_trend(m: LesionModel, by_k: dict[int, Spread], verb: str, what: str, kind: str) -> Finding:
    """Whether the error rises from the fewest to the most blocks deleted (or swapped), and at
    how many steps of k its mean rises."""
    ks = sorted(by_k)
    way = compare(by_k[ks[-1]], by_k[ks[0]])
    word = choose(way, "raises", "lowers", "does not clearly change")
    means = [by_k[k].mean for k in ks]
    rising = sum(b > a for a, b in itertools.pairwise(means))
    return Finding(
        f"{verb.capitalize()} more {what} {word} the test error of {m.label}: "
        f"{_pct(by_k[ks[0]])} with k = {ks[0]}, {_pct(by_k[ks[-1]])} with k = {ks[-1]}; the "
        f"mean over the draws rises at {rising} of {len(ks) - 1} steps of k.",
        {
            "first": by_k[ks[0]].mean,
            "last": by_k[ks[-1]].mean,
            "rising_steps": rising,
            "direction": way,
        },
        f"{kind}:{m.label}",
    )


def short_paths(m: LesionModel) -> Finding:
    """Whether the gradient comes mostly from paths shorter than the typical path."""
    typical = spread([m.paths_mean_length])
    way = compare(m.gradient_length, typical)
    word = choose(way, "longer", "shorter", "about as long (within the seeds' spread)")
    return Finding(
        f"The gradient of {m.label} comes from paths {word} {than(way)} the typical path: the "
        f"gradient-weighted mean path length is {m.gradient_length.text(1)} blocks, the mean "
        f"length of all its paths {m.paths_mean_length:g} (binomial, {len(m.blocks)} blocks).",
        {
            "gradient_length": m.gradient_length.mean,
            "mean_length": m.paths_mean_length,
            "direction": way,
        },
        f"short_paths:{m.label}",
    )


def path_decay(m: LesionModel) -> Finding:
    """Whether one path's gradient shrinks from the shortest to the longest path."""
    way = compare(m.path_norm_long, m.path_norm_short)
    word = choose(way, "grows", "shrinks", "does not clearly change")
    return Finding(
        f"In {m.label}, the gradient norm of one path {word} with its length: "
        f"{m.path_norm_short.text(3, style='g')} for the shortest path, "
        f"{m.path_norm_long.text(3, style='g')} for the longest.",
        {"shortest": m.path_norm_short.mean, "longest": m.path_norm_long.mean, "direction": way},
        f"path_decay:{m.label}",
    )
