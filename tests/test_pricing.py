"""Tests for mcsim.special and mcsim.pricing."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr, ndtri

from mcsim.pricing import (
    bs_delta,
    bs_delta_nb,
    bs_price,
    bs_price_nb,
    implied_vol,
    merton_price,
    merton_price_nb,
    round_strike_nb,
    smile_iv_nb,
    strike_for_delta,
    strike_for_delta_nb,
)
from mcsim.special import norm_cdf, norm_pdf, norm_ppf

EPS = np.finfo(float).eps


def fl(lo, hi):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


spots = fl(1.0, 1e4)
moneyness = fl(0.2, 5.0)  # strike / spot
times = fl(1e-4, 5.0)
rates = fl(-0.05, 0.20)
divs = fl(0.0, 0.10)
vols = fl(0.01, 2.0)
flags = st.booleans()


# ----------------------------------------------------------------------------- BSM


def test_hull_example():
    # Hull, Options Futures and Other Derivatives: S=42, K=40, r=10%, sigma=20%, T=0.5
    assert bs_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, True) == pytest.approx(4.759422, abs=1e-6)
    assert bs_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, False) == pytest.approx(0.808599, abs=1e-6)
    assert isinstance(bs_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, True), float)


@pytest.mark.parametrize(
    "s,k,t,r,q,v",
    [(42.0, 40.0, 0.5, 0.10, 0.0, 0.20), (100.0, 80.0, 0.1, 0.03, 0.02, 0.35),
     (250.0, 300.0, 2.0, -0.01, 0.04, 0.6), (10.0, 10.0, 1.5, 0.08, 0.0, 1.2)],
)
def test_bs_price_vs_quadrature(s, k, t, r, q, v):
    """Independent check: discounted payoff integrated against the lognormal density."""
    from scipy.integrate import quad

    fwd = s * math.exp((r - q) * t)
    sd = v * math.sqrt(t)
    z0 = (math.log(k / fwd) + 0.5 * sd * sd) / sd  # payoff kink
    dens = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    st_ = lambda z: fwd * math.exp(sd * z - 0.5 * sd * sd)  # noqa: E731
    call = quad(lambda z: (st_(z) - k) * dens(z), z0, 40.0, epsabs=1e-13, epsrel=1e-13)[0]
    put = quad(lambda z: (k - st_(z)) * dens(z), -40.0, z0, epsabs=1e-13, epsrel=1e-13)[0]
    df = math.exp(-r * t)
    assert bs_price(s, k, t, r, q, v, True) == pytest.approx(df * call, rel=1e-10, abs=1e-12 * s)
    assert bs_price(s, k, t, r, q, v, False) == pytest.approx(df * put, rel=1e-10, abs=1e-12 * s)


@settings(deadline=None)
@given(spots, moneyness, times, rates, divs, vols)
def test_put_call_parity(s, m, t, r, q, v):
    k = s * m
    c = bs_price(s, k, t, r, q, v, True)
    p = bs_price(s, k, t, r, q, v, False)
    assert c >= 0.0 and p >= 0.0
    parity = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert abs((c - p) - parity) <= 1e-12 * max(s, k)


@settings(deadline=None)
@given(spots, fl(0.5, 2.0), fl(0.02, 3.0), rates, divs, fl(0.05, 1.5), flags)
def test_delta_matches_finite_difference(s, m, t, r, q, v, is_call):
    assume(v * math.sqrt(t) >= 0.05)
    k = s * m
    h = 1e-5 * s
    fd = (bs_price(s + h, k, t, r, q, v, is_call) - bs_price(s - h, k, t, r, q, v, is_call)) / (2 * h)
    d = bs_delta(s, k, t, r, q, v, is_call)
    assert abs(d - fd) < 1e-6
    if is_call:
        assert 0.0 <= d <= math.exp(-q * t)
    else:
        assert -math.exp(-q * t) <= d <= 0.0


def test_call_put_delta_relation():
    s, k, t, r, q, v = 100.0, np.linspace(50, 150, 11), 0.7, 0.03, 0.02, 0.25
    dc = bs_delta(s, k, t, r, q, v, True)
    dp = bs_delta(s, k, t, r, q, v, False)
    np.testing.assert_allclose(dc - dp, math.exp(-q * t), rtol=0, atol=1e-15)


def test_expiry_and_zero_vol_conventions():
    for s, k, c_px, p_px, c_d, p_d in [
        (105.0, 100.0, 5.0, 0.0, 1.0, 0.0),
        (95.0, 100.0, 0.0, 5.0, 0.0, -1.0),
        (100.0, 100.0, 0.0, 0.0, 0.5, -0.5),
    ]:
        for t in (0.0, -0.1):
            assert bs_price(s, k, t, 0.05, 0.01, 0.2, True) == c_px
            assert bs_price(s, k, t, 0.05, 0.01, 0.2, False) == p_px
            assert bs_delta(s, k, t, 0.05, 0.01, 0.2, True) == c_d
            assert bs_delta(s, k, t, 0.05, 0.01, 0.2, False) == p_d
    # zero vol: discounted intrinsic on the forward; delta is e^{-qt} step
    s, t, r, q = 100.0, 0.5, 0.04, 0.01
    for k in (90.0, 110.0):
        for v in (0.0, -0.1):
            c = bs_price(s, k, t, r, q, v, True)
            p = bs_price(s, k, t, r, q, v, False)
            fwd_pv = s * math.exp(-q * t) - k * math.exp(-r * t)
            assert c == pytest.approx(max(fwd_pv, 0.0), abs=1e-13)
            assert p == pytest.approx(max(-fwd_pv, 0.0), abs=1e-13)
            # limit of tiny positive vol
            assert c == pytest.approx(bs_price(s, k, t, r, q, 1e-9, True), abs=1e-10)
            assert bs_delta(s, k, t, r, q, v, True) == pytest.approx(bs_delta(s, k, t, r, q, 1e-9, True), abs=1e-12)
            assert bs_delta(s, k, t, r, q, v, False) == pytest.approx(bs_delta(s, k, t, r, q, 1e-9, False), abs=1e-12)
    assert math.isnan(bs_price(math.nan, 100.0, 0.5, 0.0, 0.0, 0.2, True))
    assert math.isnan(bs_delta(math.nan, 100.0, 0.0, 0.0, 0.0, 0.2, True))


def test_broadcasting_shapes():
    s = np.array([90.0, 100.0, 110.0])[:, None]
    k = np.array([95.0, 105.0])
    out = bs_price(s, k, 0.5, 0.03, 0.0, 0.2, np.array([True, False]))
    assert out.shape == (3, 2)
    assert out[1, 0] == bs_price_nb(100.0, 95.0, 0.5, 0.03, 0.0, 0.2, True)
    assert out[1, 1] == bs_price_nb(100.0, 105.0, 0.5, 0.03, 0.0, 0.2, False)


# ----------------------------------------------------------------------------- twins


def _random_inputs(n, seed):
    rng = np.random.default_rng(seed)
    s = rng.uniform(10, 500, n)
    return dict(
        spot=s,
        strike=s * rng.uniform(0.5, 1.6, n),
        t=np.where(rng.random(n) < 0.05, 0.0, rng.uniform(1e-3, 3.0, n)),
        rate=rng.uniform(-0.01, 0.1, n),
        div=rng.uniform(0.0, 0.05, n),
        vol=np.where(rng.random(n) < 0.05, 0.0, rng.uniform(0.05, 1.0, n)),
        is_call=rng.random(n) < 0.5,
    )


def test_nb_twins_equal_numpy_layer():
    n = 2000
    x = _random_inputs(n, 1)
    rng = np.random.default_rng(2)
    skew = rng.uniform(-0.3, 0.6, n)
    floor = rng.uniform(0.0, 0.15, n)
    lam = rng.uniform(0.0, 3.0, n)
    jm = rng.uniform(-0.2, 0.1, n)
    js = rng.uniform(0.0, 0.3, n)
    delta = rng.uniform(0.05, 0.9, n) * np.exp(-x["div"] * x["t"])
    tpos = np.maximum(x["t"], 0.01)
    vpos = np.maximum(x["vol"], 0.05)
    a = (x["spot"], x["strike"], x["t"], x["rate"], x["div"], x["vol"], x["is_call"])
    price = bs_price(*a)
    delt = bs_delta(*a)
    iv = implied_vol(vpos, x["spot"], x["strike"], x["t"], x["rate"], x["div"], skew, floor)
    mert = merton_price(*a[:6], lam, jm, js, x["is_call"])
    skew_pos = np.abs(skew)
    kk = strike_for_delta(x["spot"], delta, tpos, x["rate"], x["div"], vpos, x["is_call"], skew_pos, floor)
    for i in range(n):
        ai = tuple(float(v[i]) for v in a[:6]) + (bool(a[6][i]),)
        assert price[i] == pytest.approx(bs_price_nb(*ai), rel=1e-14, abs=1e-14)
        assert delt[i] == pytest.approx(bs_delta_nb(*ai), rel=1e-14, abs=1e-14)
        assert iv[i] == pytest.approx(
            smile_iv_nb(vpos[i], ai[0], ai[1], ai[2], ai[3], ai[4], skew[i], floor[i]), rel=1e-14
        )
        assert mert[i] == pytest.approx(
            merton_price_nb(*ai[:6], lam[i], jm[i], js[i], ai[6]), rel=1e-14, abs=1e-14
        )
        assert kk[i] == pytest.approx(
            strike_for_delta_nb(ai[0], delta[i], tpos[i], ai[3], ai[4], vpos[i], ai[6], skew_pos[i], floor[i]),
            rel=1e-14,
        )


@settings(deadline=None)
@given(spots, moneyness, fl(0.0, 5.0), rates, divs, fl(0.0, 2.0), flags)
def test_nb_twins_equal_numpy_scalars(s, m, t, r, q, v, c):
    k = s * m
    assert bs_price(s, k, t, r, q, v, c) == pytest.approx(bs_price_nb(s, k, t, r, q, v, c), rel=1e-14, abs=1e-14)
    assert bs_delta(s, k, t, r, q, v, c) == pytest.approx(bs_delta_nb(s, k, t, r, q, v, c), rel=1e-14, abs=1e-14)


# ----------------------------------------------------------------------------- smile


def test_implied_vol_properties():
    s, t, r, q, atm = 100.0, 0.25, 0.04, 0.01, 0.2
    fwd = s * math.exp((r - q) * t)
    assert implied_vol(atm, s, fwd, t, r, q, 0.4, 0.0) == pytest.approx(atm, abs=1e-15)
    iv_put = implied_vol(atm, s, 0.9 * fwd, t, r, q, 0.4, 0.0)
    iv_call = implied_vol(atm, s, 1.1 * fwd, t, r, q, 0.4, 0.0)
    assert iv_put > atm > iv_call
    # exact formula
    k = np.array([70.0, 90.0, 100.0, 110.0, 130.0])
    m = np.log(fwd / k) / (atm * math.sqrt(t))
    np.testing.assert_allclose(implied_vol(atm, s, k, t, r, q, 0.4, 0.05), np.maximum(0.05, atm * (1 + 0.4 * m)), rtol=1e-14)
    # no skew: flat; floor binds below it
    np.testing.assert_array_equal(implied_vol(atm, s, k, t, r, q, 0.0, 0.0), atm)
    np.testing.assert_array_equal(implied_vol(atm, s, k, t, r, q, 0.0, 0.3), 0.3)
    # far OTM call with steep skew hits the floor exactly
    assert implied_vol(atm, s, 200.0, t, r, q, 0.8, 0.07) == 0.07


@settings(deadline=None)
@given(fl(0.05, 1.0), spots, moneyness, fl(0.01, 3.0), rates, divs, fl(-1.0, 1.0), fl(0.0, 0.5))
def test_implied_vol_floor_and_monotone(atm, s, m, t, r, q, skew, floor):
    k = s * m
    iv = implied_vol(atm, s, k, t, r, q, skew, floor)
    assert iv >= floor
    # monotone in strike, direction set by the sign of skew
    iv2 = implied_vol(atm, s, k * 1.01, t, r, q, skew, floor)
    if skew > 0:
        assert iv2 <= iv
    elif skew < 0:
        assert iv2 >= iv


# ----------------------------------------------------------------------------- strike for delta


def _roundtrip_error(s, d, t, r, q, v, c, skew, floor):
    k = strike_for_delta(s, d, t, r, q, v, c, skew, floor)
    assert np.isfinite(k) and k > 0
    iv = implied_vol(v, s, k, t, r, q, skew, floor)
    return abs(abs(bs_delta(s, k, t, r, q, iv, c)) - d), k


@settings(deadline=None)
@given(spots, fl(0.01, 0.95), fl(0.005, 3.0), rates, divs, fl(0.03, 1.5), flags)
def test_strike_for_delta_roundtrip_flat(s, frac, t, r, q, v, c):
    d = frac * math.exp(-q * t)
    err, k = _roundtrip_error(s, d, t, r, q, v, c, 0.0, 0.0)
    assert err < 1e-10
    # the brief's closed form
    sign = 1.0 if c else -1.0
    k_ref = s * math.exp((r - q) * t) * math.exp(-sign * ndtri(d * math.exp(q * t)) * v * math.sqrt(t) + 0.5 * v * v * t)
    assert k == pytest.approx(k_ref, rel=1e-12)


@settings(deadline=None)
@given(spots, fl(0.01, 0.95), fl(0.005, 3.0), rates, divs, fl(0.05, 1.0), flags, fl(0.0, 1.0), fl(0.0, 0.3))
def test_strike_for_delta_roundtrip_positive_skew(s, frac, t, r, q, v, c, skew, floor):
    d = frac * math.exp(-q * t)
    err, k = _roundtrip_error(s, d, t, r, q, v, c, skew, floor)
    assert err < 1e-10


@settings(deadline=None)
@given(spots, fl(0.01, 0.95), fl(0.005, 3.0), rates, divs, fl(0.05, 1.0), flags, fl(-1.5, -0.01), fl(0.0, 0.3))
def test_strike_for_delta_negative_skew_solves_or_raises(s, frac, t, r, q, v, c, skew, floor):
    d = frac * math.exp(-q * t)
    try:
        err, _ = _roundtrip_error(s, d, t, r, q, v, c, skew, floor)
    except ValueError as e:
        assert "unreachable" in str(e)
        # check on a dense log-strike grid that the target really is never crossed
        fwd = s * math.exp((r - q) * t)
        k = fwd * np.exp(np.linspace(-8.0, 8.0, 200001) * max(v, floor) * math.sqrt(t))
        iv = implied_vol(v, s, k, t, r, q, skew, floor)
        gap = np.abs(bs_delta(s, k, t, r, q, iv, c)) - d
        assert np.all(gap > -1e-9) or np.all(gap < 1e-9)
    else:
        assert err < 1e-10


def test_strike_for_delta_known_values_and_direction():
    s, t, r, q, v = 100.0, 30 / 365, 0.04, 0.0, 0.25
    kp = strike_for_delta(s, 0.30, t, r, q, v, False)
    kc = strike_for_delta(s, 0.30, t, r, q, v, True)
    assert kp < s < kc
    assert bs_delta(s, kp, t, r, q, v, False) == pytest.approx(-0.30, abs=1e-12)
    # positive skew: OTM puts carry more vol so the 30-delta put is further out
    kp_skew = strike_for_delta(s, 0.30, t, r, q, v, False, skew=0.5)
    kc_skew = strike_for_delta(s, 0.30, t, r, q, v, True, skew=0.5)
    assert kp_skew < kp and kc_skew < kc
    # vectorised, broadcasting
    ks = strike_for_delta(s, np.array([0.1, 0.2, 0.3]), t, r, q, v, np.array([[False], [True]]), 0.3, 0.05)
    assert ks.shape == (2, 3)
    assert np.all(np.diff(ks[0]) > 0) and np.all(np.diff(ks[1]) < 0)


def test_strike_for_delta_unreachable():
    t, q = 0.5, 0.04
    hi = math.exp(-q * t)
    for bad in (0.0, -0.1, hi, 1.0, 1.5):
        assert math.isnan(strike_for_delta_nb(100.0, bad, t, 0.03, q, 0.2, False, 0.0, 0.0))
        with pytest.raises(ValueError, match=r"delta=.*\(0, 0\.98"):
            strike_for_delta(100.0, bad, t, 0.03, q, 0.2, False)
    with pytest.raises(ValueError, match=r"delta=1\.5 at index \(2,\)"):
        strike_for_delta(100.0, [0.2, 0.3, 1.5], t, 0.03, q, 0.2, True)
    with pytest.raises(ValueError, match="t=0.0"):
        strike_for_delta(100.0, 0.3, 0.0, 0.03, q, 0.2, True)
    with pytest.raises(ValueError, match="vol=0.0"):
        strike_for_delta(100.0, 0.3, 0.5, 0.03, q, 0.0, True)
    # steep negative skew and no floor: small call deltas cannot be reached
    assert math.isnan(strike_for_delta_nb(100.0, 0.02, 1.0, 0.0, 0.0, 0.2, True, -1.5, 0.0))
    with pytest.raises(ValueError, match="unreachable for a call"):
        strike_for_delta(100.0, 0.02, 1.0, 0.0, 0.0, 0.2, True, -1.5, 0.0)
    # nan input propagates silently
    assert np.isnan(strike_for_delta(100.0, math.nan, 0.5, 0.03, q, 0.2, True))


# ----------------------------------------------------------------------------- Merton


@settings(deadline=None)
@given(spots, moneyness, times, rates, divs, vols, flags, fl(-0.5, 0.5), fl(0.0, 0.5))
def test_merton_no_jumps_is_bs(s, m, t, r, q, v, c, jm, js):
    k = s * m
    bs = bs_price(s, k, t, r, q, v, c)
    assert abs(merton_price(s, k, t, r, q, v, 0.0, jm, js, c) - bs) <= 1e-12 * max(s, k)


@settings(deadline=None)
@given(spots, moneyness, times, rates, divs, vols, fl(0.0, 5.0), fl(-0.5, 0.3), fl(0.0, 0.5))
def test_merton_put_call_parity(s, m, t, r, q, v, lam, jm, js):
    k = s * m
    c = merton_price(s, k, t, r, q, v, lam, jm, js, True)
    p = merton_price(s, k, t, r, q, v, lam, jm, js, False)
    assert abs((c - p) - (s * math.exp(-q * t) - k * math.exp(-r * t))) <= 1e-10 * max(s, k)


def _merton_mc(s, strikes, t, r, q, v, lam, jm, js, n, seed):
    """Brute force: Poisson jump counts, individual lognormal jump sizes."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(lam * t, n)
    owner = np.repeat(np.arange(n), counts)
    jumps = np.bincount(owner, weights=rng.normal(jm, js, counts.sum()), minlength=n)
    k_comp = math.exp(jm + 0.5 * js * js) - 1.0
    z = rng.standard_normal(n)
    st_ = s * np.exp((r - q - lam * k_comp - 0.5 * v * v) * t + v * math.sqrt(t) * z + jumps)
    out = {}
    for is_call in (True, False):
        pay = np.maximum(st_[:, None] - strikes, 0.0) if is_call else np.maximum(strikes - st_[:, None], 0.0)
        disc = math.exp(-r * t) * pay
        out[is_call] = (disc.mean(axis=0), disc.std(axis=0, ddof=1) / math.sqrt(n))
    return out


def test_merton_matches_monte_carlo_with_negative_control():
    s, t, r, q, v = 100.0, 0.5, 0.03, 0.01, 0.18
    lam, jm, js = 2.0, -0.08, 0.12
    strikes = np.array([80.0, 95.0, 100.0, 110.0])
    mc = _merton_mc(s, strikes, t, r, q, v, lam, jm, js, 400_000, seed=20240611)
    for is_call, (mean, se) in mc.items():
        good = merton_price(s, strikes, t, r, q, v, lam, jm, js, is_call)
        assert np.all(np.abs(good - mean) < 4 * se), (is_call, good, mean, se)
        # negative control: a wrong jump mean must be detected by the same check
        wrong = merton_price(s, strikes, t, r, q, v, lam, jm + 0.08, js, is_call)
        assert np.all(np.abs(wrong - mean) > 4 * se), (is_call, wrong, mean, se)
        # and jumps matter: plain BS with the diffusive vol is also rejected
        bs = bs_price(s, strikes, t, r, q, v, is_call)
        assert np.any(np.abs(bs - mean) > 4 * se)


def test_merton_extreme_intensity_converges():
    # many jumps: the series must still sum (mode ~ 200 terms) and keep parity
    s, k, t, r, q, v = 100.0, 100.0, 2.0, 0.02, 0.0, 0.1
    c = merton_price(s, k, t, r, q, v, 100.0, -0.01, 0.02, True)
    p = merton_price(s, k, t, r, q, v, 100.0, -0.01, 0.02, False)
    assert np.isfinite(c) and c > 0
    assert c - p == pytest.approx(s * math.exp(-q * t) - k * math.exp(-r * t), abs=1e-10)
    assert math.isnan(merton_price(s, k, t, r, q, v, -1.0, -0.01, 0.02, True))
    assert merton_price(s, 90.0, 0.0, r, q, v, 1.0, -0.01, 0.02, True) == 10.0


# ----------------------------------------------------------------------------- special


def test_norm_ppf_vs_ndtri_grid():
    rng = np.random.default_rng(7)
    ps = np.concatenate(
        [
            10.0 ** rng.uniform(-300, 0, 20_000),
            rng.uniform(0, 1, 20_000),
            1.0 - 10.0 ** rng.uniform(-16, 0, 20_000),
            np.linspace(0.07, 0.08, 2001),  # around the 0.075 / 0.925 split
            np.linspace(0.92, 0.93, 2001),
            [1e-300, 1 - 1e-16, 0.5, 0.075, 0.925],
        ]
    )
    ps = ps[(ps >= 1e-300) & (ps <= 1 - 1e-16)]
    z = np.array([norm_ppf(p) for p in ps])
    ref = ndtri(ps)
    np.testing.assert_allclose(z, ref, rtol=1e-14, atol=0)


@settings(deadline=None, max_examples=300)
@given(st.one_of(fl(1e-300, 1 - 1e-16), fl(-300.0, -1e-16).map(lambda e: 10.0**e)))
def test_norm_ppf_vs_ndtri_hypothesis(p):
    assume(1e-300 <= p <= 1 - 1e-16)
    ref = ndtri(p)
    assert abs(norm_ppf(p) - ref) <= 1e-14 * abs(ref)


@settings(deadline=None, max_examples=300)
@given(fl(-37.0, 8.0))
def test_norm_ppf_cdf_roundtrip(x):
    p = norm_cdf(x)
    tol = 1e-14 * max(1.0, abs(x)) + 8 * EPS * p / norm_pdf(x)
    assert abs(norm_ppf(p) - x) <= tol


def test_norm_special_values():
    assert norm_ppf(0.5) == 0.0
    assert norm_ppf(0.0) == -math.inf and norm_ppf(1.0) == math.inf
    for bad in (-0.1, 1.1, math.nan):
        assert math.isnan(norm_ppf(bad))
    assert norm_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-15)
    assert norm_cdf(0.0) == 0.5
    xs = np.linspace(-37.0, 8.0, 4501)
    np.testing.assert_allclose([norm_cdf(x) for x in xs], ndtr(xs), rtol=1e-13)
    np.testing.assert_allclose([norm_pdf(x) for x in xs], np.exp(-0.5 * xs**2) / math.sqrt(2 * math.pi), rtol=1e-14)


# ----------------------------------------------------------------------------- strike rounding


def test_round_strike_nb_cases():
    assert round_strike_nb(452.3, 5.0, False) == 450.0
    assert round_strike_nb(452.3, 5.0, True) == 455.0
    assert round_strike_nb(449.99999999, 1.0, False) == 450.0  # float noise snaps, not 449
    assert round_strike_nb(450.00000001, 1.0, True) == 450.0  # not 451
    assert round_strike_nb(449.9, 1.0, False) == 449.0
    assert round_strike_nb(449.1, 1.0, True) == 450.0
    assert round_strike_nb(450.0, 5.0, False) == 450.0
    assert round_strike_nb(100.26, 0.5, False) == 100.0
    assert round_strike_nb(100.26, 0.5, True) == 100.5
    assert round_strike_nb(0.3 / 0.1 * 0.1, 0.1, False) == pytest.approx(0.3, rel=1e-15)
    assert round_strike_nb(123.456, 0.0, True) == 123.456
    assert math.isnan(round_strike_nb(math.nan, 1.0, True))


@settings(deadline=None)
@given(fl(1.0, 5000.0), st.sampled_from([0.01, 0.05, 0.5, 1.0, 2.5, 5.0, 10.0]), flags)
def test_round_strike_nb_properties(k, step, c):
    out = round_strike_nb(k, step, c)
    n = out / step
    assert abs(n - round(n)) <= 1e-9 * max(1.0, abs(n))  # on the grid
    assert abs(out - k) < step * (1 + 1e-9)
    if c:
        assert out >= k * (1 - 1e-9)
    else:
        assert out <= k * (1 + 1e-9)
