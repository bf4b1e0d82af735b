"""The numbers of the landscape experiment per model, and the sentences they allow.

Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets", arXiv:1712.09913) find ResNet-56's
surface smooth and nearly convex and plain-56's chaotic. Here a surface is *less convex* than
another when a larger share of its interior grid points is non-convex
(``analysis.curvature.nonconvex_share``), beyond the seeds' spread; the trained weights are *the
lowest point* of a grid when no other grid point has a lower loss. Each sentence is a ``Finding``
made by these rules, so it flips or changes where the numbers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from resnetlab.analysis.curvature import centre_index, nonconvex_share
from resnetlab.analysis.landscape import Landscape
from resnetlab.experiments.findings import Finding, Spread, choose, compare, spread, than
from resnetlab.experiments.nets import Net


@dataclass(frozen=True)
class LandscapeModel:
    """One model's landscapes over its seeds.

    Attributes:
        label: ``plain56``, ``resnet56``.
        depth: the paper's depth.
        residual: ResNet or plain twin.
        seeds: the seeds of its nets.
        dims: 1 (a curve) or 2 (a surface).
        centre_loss: the training loss at the trained weights.
        centre_error: the training error there (a fraction).
        nonconvex: the share of interior grid points that are non-convex.
        lowest_elsewhere: the lowest loss at any other grid point.
        highest: the highest loss on the grid.
        centre_lowest: per seed, whether the trained weights are the grid's lowest point.
    """

    label: str
    depth: int
    residual: bool
    seeds: tuple[int, ...]
    dims: int
    centre_loss: Spread
    centre_error: Spread
    nonconvex: Spread
    lowest_elsewhere: Spread
    highest: Spread
    centre_lowest: tuple[bool, ...]

    def to_dict(self) -> dict:
        return {
            "model": self.label,
            "depth": self.depth,
            "residual": self.residual,
            "seeds": list(self.seeds),
            "dims": self.dims,
            "centre_loss": self.centre_loss.to_dict(),
            "centre_error": self.centre_error.to_dict(),
            "nonconvex_share": self.nonconvex.to_dict(),
            "lowest_loss_elsewhere": self.lowest_elsewhere.to_dict(),
            "highest_loss": self.highest.to_dict(),
            "centre_is_lowest": list(self.centre_lowest),
        }


def summarise(nets: Sequence[Net], lands: Sequence[Landscape]) -> list[LandscapeModel]:
    """Group the nets' landscapes by model label, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, net in enumerate(nets):
        groups.setdefault(net.label, []).append(i)
    models = []
    for label, idx in groups.items():
        chosen = [lands[i] for i in idx]
        elsewhere = [_lowest_elsewhere(x) for x in chosen]
        models.append(
            LandscapeModel(
                label=label,
                depth=nets[idx[0]].depth,
                residual=nets[idx[0]].residual,
                seeds=tuple(nets[i].seed for i in idx),
                dims=1 if chosen[0].betas is None else 2,
                centre_loss=spread(x.centre_loss for x in chosen),
                centre_error=spread(x.centre_error for x in chosen),
                nonconvex=spread(nonconvex_share(x) for x in chosen),
                lowest_elsewhere=spread(elsewhere),
                highest=spread(float(np.nanmax(x.loss)) for x in chosen),
                centre_lowest=tuple(
                    bool(x.centre_loss <= e) for x, e in zip(chosen, elsewhere, strict=True)
                ),
            )
        )
    return models


def _lowest_elsewhere(land: Landscape) -> float:
    loss = np.array(land.loss, dtype=np.float64)
    loss[centre_index(land)] = np.inf
    return float(np.nanmin(loss))


def findings(models: Sequence[LandscapeModel]) -> list[Finding]:
    """Twins compared at each depth (convexity, loss at the centre), then each model's minimum."""
    found = []
    for plain in (m for m in models if not m.residual):
        res = next((m for m in models if m.residual and m.depth == plain.depth), None)
        if res is not None:
            found += [convexity(plain, res), centre_loss(plain, res)]
    found += [minimum(m) for m in models]
    return found


def convexity(plain: LandscapeModel, res: LandscapeModel) -> Finding:
    """Whose plotted surface holds the larger share of non-convex points."""
    way = compare(plain.nonconvex, res.nonconvex)
    word = choose(way, "less", "more", "about as (within the seeds' spread)")
    what = "surface" if plain.dims == 2 else "curve"
    return Finding(
        f"The loss {what} of {plain.label} is {word} convex {than(way)} that of {res.label}: "
        f"{plain.nonconvex.text(1, 100, '%')} of its interior grid points are non-convex vs "
        f"{res.nonconvex.text(1, 100, '%')}.",
        {
            "plain_nonconvex": plain.nonconvex.mean,
            "resnet_nonconvex": res.nonconvex.mean,
            "direction": way,
        },
        f"convexity:{plain.depth}",
    )


def centre_loss(plain: LandscapeModel, res: LandscapeModel) -> Finding:
    """Whose training loss at the trained weights is higher."""
    way = compare(plain.centre_loss, res.centre_loss)
    word = choose(way, "higher than", "lower than", "about the same as")
    within = " (within the seeds' spread)" if way == 0 else ""
    return Finding(
        f"At the trained weights, the training loss of {plain.label} is {word} that of "
        f"{res.label}{within}: {plain.centre_loss.text(4)} vs {res.centre_loss.text(4)}.",
        {
            "plain_centre_loss": plain.centre_loss.mean,
            "resnet_centre_loss": res.centre_loss.mean,
            "direction": way,
        },
        f"centre_loss:{plain.depth}",
    )


def minimum(m: LandscapeModel) -> Finding:
    """Whether the trained weights are the lowest point of the grid, for how many seeds."""
    hits, runs = sum(m.centre_lowest), len(m.centre_lowest)
    if hits == runs:
        verb = "are the lowest point of its grid"
    elif hits == 0:
        verb = "are not the lowest point of its grid"
    else:
        verb = f"are the lowest point of its grid for {hits} of {runs} seeds"
    return Finding(
        f"The trained weights of {m.label} {verb}: loss {m.centre_loss.text(4)} there, "
        f"{m.lowest_elsewhere.text(4)} at the lowest other point.",
        {
            "seeds_lowest": hits,
            "seeds": runs,
            "centre_loss": m.centre_loss.mean,
            "lowest_elsewhere": m.lowest_elsewhere.mean,
        },
        f"minimum:{m.label}",
    )


HEADER = (
    "model",
    "seeds",
    "loss at the centre",
    "error at the centre",
    "non-convex points",
    "lowest elsewhere",
    "highest",
)


def table_rows(models: Sequence[LandscapeModel]) -> list[tuple[str, ...]]:
    """One row per model."""
    return [
        (
            m.label,
            str(len(m.seeds)),
            m.centre_loss.text(4),
            m.centre_error.text(1, 100, "%"),
            m.nonconvex.text(1, 100, "%"),
            m.lowest_elsewhere.text(4),
            m.highest.text(3),
        )
        for m in models
    ]
