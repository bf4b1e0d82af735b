"""How convex a loss landscape looks: principal curvatures of the plotted surface.

Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets", arXiv:1712.09913, §6) ask whether
the convex-looking basins of their plots are convex, and answer with the principal curvatures, the
eigenvalues of the Hessian: they map the ratio ``|lambda_min / lambda_max|`` across each plot and
find that convex-looking regions have only insignificant negative curvature, while chaotic regions
hold large negative curvature. We compute the same ratio for the surface that is plotted: at
every interior point of a 2-D grid the Hessian of the loss with respect to the two coordinates,
by central finite differences,

    f_aa = (f(a+h, b) - 2 f(a, b) + f(a-h, b)) / h^2        (f_bb the same along b)
    f_ab = (f(a+h, b+k) - f(a+h, b-k) - f(a-h, b+k) + f(a-h, b-k)) / (4 h k),

whose two eigenvalues are the surface's principal curvatures (on a 1-D curve, the one second
difference). A point is **non-convex** when it curves downwards significantly:
``lambda_min < 0`` and ``|lambda_min| >= NONCONVEX_RATIO * max(|lambda_1|, |lambda_2|)``. The
landscape's one number is the share of non-convex points among the interior points. It speaks
for the two plotted directions only, as Li et al. warn of any 2-D view.
"""

from __future__ import annotations

import numpy as np

from resnetlab.analysis.landscape import Landscape
from resnetlab.errors import ConfigError

NONCONVEX_RATIO = 0.1  # |lambda_min| / max |lambda| from which negative curvature is significant


def principal_curvatures(land: Landscape) -> np.ndarray:
    """The principal curvatures of the loss at every interior grid point, smallest first.

    Returns:
        (B - 2, A - 2, 2) for a 2-D landscape of (B, A) points, (A - 2, 1) for a 1-D curve.

    Raises:
        ConfigError: fewer than 3 points along an axis, or unevenly spaced coordinates.
    """
    h = _step(land.alphas, "alphas")
    f = np.asarray(land.loss, dtype=np.float64)
    if land.betas is None:
        return ((f[2:] - 2 * f[1:-1] + f[:-2]) / h**2)[:, None]
    k = _step(land.betas, "betas")
    f_aa = (f[1:-1, 2:] - 2 * f[1:-1, 1:-1] + f[1:-1, :-2]) / h**2  # (B-2, A-2)
    f_bb = (f[2:, 1:-1] - 2 * f[1:-1, 1:-1] + f[:-2, 1:-1]) / k**2
    f_ab = (f[2:, 2:] - f[:-2, 2:] - f[2:, :-2] + f[:-2, :-2]) / (4 * h * k)
    mean, radius = (f_aa + f_bb) / 2, np.sqrt(((f_aa - f_bb) / 2) ** 2 + f_ab**2)
    return np.stack([mean - radius, mean + radius], axis=-1)


def nonconvex_share(land: Landscape, ratio: float = NONCONVEX_RATIO) -> float:
    """The share of interior grid points where the surface curves downwards significantly
    (the module docstring's rule); NaN where a curvature is not finite."""
    curv = principal_curvatures(land)
    lowest = curv.min(axis=-1)
    largest = np.abs(curv).max(axis=-1)
    if not np.isfinite(curv).all():
        return float("nan")
    return float(np.mean((lowest < 0) & (-lowest >= ratio * largest)))


def centre_index(land: Landscape) -> tuple[int, ...]:
    """The grid index of the trained weights (coordinates 0), row first for a surface.

    Raises:
        ConfigError: 0 is not a coordinate of the grid.
    """
    axes = [land.alphas] if land.betas is None else [land.betas, land.alphas]
    index = []
    for axis in axes:
        hits = np.flatnonzero(np.asarray(axis) == 0.0)
        if len(hits) == 0:
            raise ConfigError("the grid does not hold the trained weights (no coordinate 0)")
        index.append(int(hits[0]))
    return tuple(index)


def _step(axis: np.ndarray, name: str) -> float:
    axis = np.asarray(axis, dtype=np.float64)
    if len(axis) < 3:
        raise ConfigError(f"curvatures need at least 3 {name}; got {len(axis)}")
    steps = np.diff(axis)
    if not np.allclose(steps, steps[0], rtol=1e-9, atol=0):
        raise ConfigError(f"curvatures need evenly spaced {name}")
    return float(steps[0])
