"""Directional sentences of the work after the paper, from the numbers of its analyses.

The same machinery as ``claims`` (a registered function of plain numbers returns the direction
and the sentence; ``claims.remake`` writes it again from a report's ``results.json``), for the
findings the lesson quotes: Balduzzi et al. 2017 (arXiv:1702.08591) on shattered gradients, Veit
et al. 2016 (arXiv:1605.06431) on lesions, Li et al. 2018 (arXiv:1712.09913) on loss landscapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from resnetlab.experiments.claims import compare_values, register


@register
def shattered(
    *, depth: int, plain: str, plain_lag1: float, residual: str, residual_lag1: float
) -> tuple[str, str]:
    """At one depth, the lag-1 autocorrelation of the input gradient, ResNet against plain."""
    direction = compare_values([residual_lag1], [plain_lag1])
    both = f"lag-1 autocorrelation {residual_lag1:.2f} against {plain_lag1:.2f}"
    text = {
        "higher": f"At depth {depth} and initialisation, {residual}'s input gradients stay more "
        f"alike between neighbouring inputs than {plain}'s ({both}): the plain net's gradients "
        "are the more shattered, as Balduzzi et al. 2017 found.",
        "lower": f"At depth {depth}, {residual}'s input gradients are less alike between "
        f"neighbouring inputs than {plain}'s ({both}), unlike Balduzzi et al. 2017.",
        "level": f"At depth {depth}, {residual}'s and {plain}'s input gradients are alike "
        f"({both}): no difference shown.",
    }[direction]
    return direction, text


@register
def lesion(
    *, plain: str, plain_rise: float, residual: str, residual_rise: float
) -> tuple[str, str]:
    """Deleting one same-shape block: the mean rise of the test error, ResNet against plain."""
    direction = compare_values([residual_rise], [plain_rise])
    both = (
        f"the test error rises by {100 * residual_rise:.1f} points on average for {residual}, "
        f"{100 * plain_rise:.1f} for {plain}"
    )
    text = {
        "lower": f"Deleting one block (not a downsampling one) hurts {residual} less than "
        f"{plain} ({both}): the ResNet has other paths, as Veit et al. 2016 found.",
        "higher": f"Deleting one block (not a downsampling one) hurts {residual} more than "
        f"{plain} ({both}), unlike Veit et al. 2016.",
        "level": f"Deleting one block hurts {residual} and {plain} alike ({both}).",
    }[direction]
    return direction, text


@register
def downsampling(*, model: str, shape_rise: float, other_rise: float) -> tuple[str, str]:
    """In one ResNet: deleting a downsampling block against deleting any other block."""
    direction = compare_values([shape_rise], [other_rise])
    both = f"{100 * shape_rise:.1f} against {100 * other_rise:.1f} points on average"
    text = {
        "higher": f"In {model}, deleting a downsampling block raises the test error more than "
        f"deleting another block ({both}), as Veit et al. 2016 found.",
        "lower": f"In {model}, deleting a downsampling block raises the test error less than "
        f"deleting another block ({both}), unlike Veit et al. 2016.",
        "level": f"In {model}, deleting a downsampling block or another block hurts alike "
        f"({both}).",
    }[direction]
    return direction, text


@register
def landscape(
    *, plain: str, plain_convex: float, residual: str, residual_convex: float
) -> tuple[str, str]:
    """Around the trained weights: the share of grid points where the loss curves upwards."""
    direction = compare_values([residual_convex], [plain_convex])
    both = (
        f"the loss curves upwards at {residual_convex:.0%} of the grid points for {residual}, "
        f"{plain_convex:.0%} for {plain}"
    )
    text = {
        "higher": f"Along random directions around the trained weights, {residual}'s loss is "
        f"closer to convex than {plain}'s ({both}), as Li et al. 2018 found.",
        "lower": f"Along random directions around the trained weights, {residual}'s loss is "
        f"further from convex than {plain}'s ({both}), unlike Li et al. 2018.",
        "level": f"Around the trained weights, {residual}'s and {plain}'s losses are alike in "
        f"shape ({both}).",
    }[direction]
    return direction, text


def convex_share(loss: np.ndarray) -> float:
    """The share of interior grid points where the discrete second difference of the loss is
    non-negative, along every axis of a curve (A,) or a surface (B, A); NaN points left out."""
    loss = np.asarray(loss, dtype=np.float64)
    seconds = [np.diff(loss, n=2, axis=axis).ravel() for axis in range(loss.ndim)]
    values = np.concatenate(seconds)
    values = values[np.isfinite(values)]
    return float((values >= 0).mean()) if values.size else float("nan")


def single_rises(single: Sequence[float], baseline: float, changes: Sequence[bool]) -> tuple:
    """``(mean rise over same-shape blocks, mean rise over downsampling blocks or NaN)``."""
    rise = np.asarray(single, dtype=np.float64) - baseline
    shape = np.asarray(changes, dtype=bool)
    same = float(rise[~shape].mean()) if (~shape).any() else float("nan")
    down = float(rise[shape].mean()) if shape.any() else float("nan")
    return same, down
