"""American pricing (mcsim/american.py) against a binomial tree and exact properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from mcsim.american import (
    american_price,
    baw_price_nb,
    bivariate_norm_cdf_nb,
    bs2002_price_nb,
    crr_price_nb,
    exercise_boundary,
)
from mcsim.pricing import bs_price_nb

TREE = 1500


def test_bivariate_normal_against_scipy():
    rng = np.random.default_rng(4)
    for rho in (-0.786, -0.5, 0.0, 0.3, 0.786, 0.9):
        cov = [[1.0, rho], [rho, 1.0]]
        for a, b in rng.uniform(-3, 3, (12, 2)):
            want = multivariate_normal(mean=[0, 0], cov=cov).cdf([a, b])
            assert bivariate_norm_cdf_nb(a, b, rho) == pytest.approx(want, abs=2e-7)


def test_tree_converges_to_black_scholes_without_early_exercise():
    # a call on a non-dividend stock is never exercised early: tree = European, error O(1/n)
    for s in (90.0, 100.0, 110.0):
        euro = bs_price_nb(s, 100.0, 0.25, 0.05, 0.0, 0.3, True)
        assert crr_price_nb(s, 100.0, 0.25, 0.05, 0.0, 0.3, True, 2000) == pytest.approx(euro, abs=0.01)


@pytest.fixture(scope="module")
def tree_grid():
    """Short-dated options as the wheel sells them, each with its 1,500-step tree price."""
    grid = list(itertools.product((False, True), (80.0, 90.0, 97.0, 103.0, 110.0, 120.0), (5, 20, 40),
                                  (0.15, 0.3), (0.0, 0.04), (0.0, 0.015, 0.05)))
    return [(g, crr_price_nb(g[1], 100.0, g[2] / 252, g[4], g[5], g[3], g[0], TREE)) for g in grid]


@pytest.mark.parametrize("method, max_err", [(baw_price_nb, 0.06), (bs2002_price_nb, 0.1)])
def test_approximations_against_the_tree(method, max_err, tree_grid):
    """Within a few cents of the tree (both are lower bounds of the American price in theory)."""
    errs = np.array([abs(method(s, 100.0, days / 252, r, q, vol, is_call) - ref)
                     for (is_call, s, days, vol, r, q), ref in tree_grid])
    assert errs.max() < max_err and errs.mean() < 0.006, (errs.max(), errs.mean())


def test_baw_early_exercise_boundary_near_the_trees():
    """The issue's example: K 437, vol 0.21, r 4%, q 1.3%: the boundary where time value < $0.05."""
    for days in (20, 10, 5):
        tree = exercise_boundary(437.0, days / 252, 0.04, 0.013, 0.21, False, "crr", 0.05, TREE)
        baw = exercise_boundary(437.0, days / 252, 0.04, 0.013, 0.21, False, "baw", 0.05)
        assert 1 - tree / 437 > 0.05 - 0.002 * (20 - days) / 5  # deep in the money, as the tree says
        assert abs(baw - tree) / 437 < 0.006, (days, tree, baw)


@settings(max_examples=150, deadline=None)
@given(s=st.floats(20, 200), days=st.integers(1, 120), vol=st.floats(0.05, 1.2), r=st.floats(-0.02, 0.1),
       q=st.floats(0.0, 0.1), is_call=st.booleans())
# a deep ITM put with a rate below the no-carry cut: the European is a hair below intrinsic
@example(s=20.0, days=1, vol=1.0, r=2.382491500165944e-11, q=0.0, is_call=False)
def test_american_price_bounds(s, days, vol, r, q, is_call):
    t = days / 252
    intrinsic = max(s - 100.0, 0.0) if is_call else max(100.0 - s, 0.0)
    euro = bs_price_nb(s, 100.0, t, r, q, vol, is_call)
    for f in (baw_price_nb, bs2002_price_nb):
        p = f(s, 100.0, t, r, q, vol, is_call)
        assert math.isfinite(p) and p >= max(intrinsic, euro) - 1e-9
        assert p <= (s if is_call else 100.0) + 1e-9
    if (is_call and q <= 1e-10) or (not is_call and r <= 1e-10):
        # no carry, no early-exercise premium: the American is the European floored at intrinsic
        assert baw_price_nb(s, 100.0, t, r, q, vol, is_call) == pytest.approx(max(euro, intrinsic), abs=1e-12)


def test_put_call_symmetry_and_the_numpy_wrapper():
    # P(S, K, r, q) = C(K, S, q, r) holds exactly for American options (on the tree, to O(1/n))
    p = crr_price_nb(90.0, 100.0, 0.2, 0.05, 0.01, 0.3, False, TREE)
    c = crr_price_nb(100.0, 90.0, 0.2, 0.01, 0.05, 0.3, True, TREE)
    assert p == pytest.approx(c, abs=0.01)
    got = american_price([90.0, 100.0], 100.0, 0.1, 0.04, 0.01, 0.25, False, "baw")
    assert got.shape == (2,) and got[0] == baw_price_nb(90.0, 100.0, 0.1, 0.04, 0.01, 0.25, False)
    with pytest.raises(ValueError, match="method"):
        american_price(1.0, 1.0, 1.0, 0.0, 0.0, 0.1, True, "magic")
