"""Principal curvatures of a landscape grid and its share of non-convex points (Li et al. 2018)."""

import numpy as np
import pytest

from resnetlab.analysis.curvature import (
    NONCONVEX_RATIO,
    centre_index,
    nonconvex_share,
    principal_curvatures,
)
from resnetlab.analysis.landscape import Landscape
from resnetlab.errors import ConfigError

AXIS = np.linspace(-1.0, 1.0, 9)


def _surface(f, alphas=AXIS, betas=AXIS) -> Landscape:
    a, b = np.meshgrid(alphas, betas)  # rows: beta, columns: alpha, as the landscape has them
    loss = f(a, b)
    return Landscape("net", np.array(alphas), np.array(betas), loss, 0 * loss, 0.0, 0.0, 0, 1)


def _curve(f, alphas=AXIS) -> Landscape:
    loss = f(np.asarray(alphas))
    return Landscape("net", np.array(alphas), None, loss, 0 * loss, 0.0, 0.0, 0, 1)


def test_the_curvatures_of_quadratics_are_their_hessians_eigenvalues():
    # Central differences are exact for quadratics: the Hessian of a^2 + 3 b^2 + a b is
    # [[2, 1], [1, 6]], whose eigenvalues are 4 -+ sqrt(5).
    curv = principal_curvatures(_surface(lambda a, b: a**2 + 3 * b**2 + a * b))
    assert curv.shape == (7, 7, 2)
    np.testing.assert_allclose(curv[..., 0], 4 - np.sqrt(5), rtol=1e-9)
    np.testing.assert_allclose(curv[..., 1], 4 + np.sqrt(5), rtol=1e-9)
    saddle = principal_curvatures(_surface(lambda a, b: a * b))  # [[0, 1], [1, 0]]: -1 and 1
    np.testing.assert_allclose(saddle, np.broadcast_to([-1.0, 1.0], saddle.shape), atol=1e-9)
    line = principal_curvatures(_curve(lambda a: 5 * a**2 - a))
    assert line.shape == (7, 1)
    np.testing.assert_allclose(line, 10.0, rtol=1e-9)


def test_the_nonconvex_share_counts_significant_downward_curvature():
    assert nonconvex_share(_surface(lambda a, b: a**2 + b**2)) == 0.0  # a bowl
    assert nonconvex_share(_surface(lambda a, b: a**2 - b**2)) == 1.0  # a saddle everywhere
    # Curvatures -r and 1: non-convex exactly when r reaches the ratio.
    for r, expected in ((NONCONVEX_RATIO * 0.9, 0.0), (NONCONVEX_RATIO * 1.1, 1.0)):
        share = nonconvex_share(_surface(lambda a, b, r=r: 0.5 * a**2 - 0.5 * r * b**2))
        assert share == expected, r
    # a^2 - b^3 curves by 2 along a and by -6b along b (exact for a cubic): downwards at the
    # interior rows b = 0.25, 0.5, 0.75, 3 of the 7.
    assert nonconvex_share(_surface(lambda a, b: a**2 - b**3)) == pytest.approx(3 / 7)
    assert nonconvex_share(_curve(lambda a: -(a**2))) == 1.0
    assert np.isnan(nonconvex_share(_surface(lambda a, b: a + np.where(a > 0.9, np.nan, 0))))


def test_the_centre_and_bad_grids():
    assert centre_index(_surface(lambda a, b: a)) == (4, 4)
    assert centre_index(_curve(lambda a: a)) == (4,)
    with pytest.raises(ConfigError, match="no coordinate 0"):
        centre_index(_curve(lambda a: a, np.linspace(-1, 1, 8)))
    with pytest.raises(ConfigError, match="evenly spaced alphas"):
        principal_curvatures(_curve(lambda a: a, np.array([-1.0, 0.0, 0.5])))
    with pytest.raises(ConfigError, match="at least 3 betas"):
        principal_curvatures(_surface(lambda a, b: a, betas=np.array([0.0, 1.0])))
