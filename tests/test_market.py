"""Market path generation: moments, regimes, correlation, repricing, reproducibility, shocks.

Statistical checks: an estimate passes when it is within 4 standard errors (computed here) of
the model value, with enough paths that the standard error is below 0.5% of that value. Each
comes with a negative control: the same check against a deliberately wrong parameter must fail,
and we also assert that the wrong value sits >= 8 standard errors away, so the control has
power. Seeds are fixed, so every check is deterministic.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

import mcsim
from mcsim import pricing
from mcsim.market import (
    BLOCK,
    MarketPaths,
    covering_blocks,
    generate_market,
    market_params,
    matrix_sqrt,
    simulate_market,
    stream_info,
)

TOL_SE = 4.0


def scenario(tmp_path, body: str, overrides=()):
    p = tmp_path / f"s{abs(hash(body)) % 10**8}.toml"
    p.write_text(textwrap.dedent(body))
    return mcsim.load_scenario(p, overrides)


def within(est, se, expected):
    return abs(est - expected) <= TOL_SE * se


def check(est, se, expected, wrong, what):
    """Pass vs the model value; fail (with power) vs the deliberately wrong value."""
    assert se < 0.005 * abs(expected), f"{what}: se {se:.3g} not below 0.5% of {expected:.6g}"
    assert within(est, se, expected), f"{what}: {est:.6g} vs {expected:.6g} (se {se:.3g}, {abs(est - expected) / se:.1f} se)"
    assert abs(wrong - expected) >= 8 * se, f"{what}: negative control too weak ({abs(wrong - expected) / se:.1f} se)"
    assert not within(est, se, wrong), f"{what}: negative control {wrong:.6g} also passes (est {est:.6g}, se {se:.3g})"


def chunks(sc, n_paths, seed, chunk=16 * BLOCK):
    """Generate in engine-style chunks into reused buffers (bounded memory)."""
    p = market_params(sc)
    n_u = len(p.underlyings)
    out = (np.empty((chunk, p.n_steps + 1, n_u)), np.empty((chunk, p.n_steps + 1, n_u)),
           np.empty((chunk, p.n_steps + 1), dtype=np.int8))
    for first in range(0, n_paths, chunk):
        yield generate_market(p, seed, first, min(chunk, n_paths - first), out=out)


GBM_TOML = """
[run]
horizon_years = 1.0
steps_per_year = 12
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.02
expected_return = {mu}
volatility = {vol}
"""


# --------------------------------------------------------------------------------------------
# moments


def test_gbm_log_return_mean_and_variance(tmp_path):
    mu, q, vol = 0.50, 0.02, 0.20
    sc = scenario(tmp_path, GBM_TOML.format(mu=mu, vol=vol))
    dt = sc.run.dt
    m = simulate_market(sc, 200_000, seed=11)
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1).ravel()  # independent increments
    n = x.size
    mean = x.mean()
    se_mean = x.std() / math.sqrt(n)
    check(mean, se_mean, (mu - q - 0.5 * vol**2) * dt, (1.01 * mu - q - 0.5 * vol**2) * dt, "mean log return")
    c = x - mean
    var = np.mean(c**2)
    se_var = math.sqrt((np.mean(c**4) - var**2) / n)
    check(var, se_var, vol**2 * dt, (1.01 * vol) ** 2 * dt, "variance of log return")
    assert np.all(m.spot[:, 0, 0] == 100.0)


def test_merton_expected_terminal_spot(tmp_path):
    # lambda dt = 0.25 per step: several jumps in one step happen (~2.6% of steps).
    mu, q = 0.10, 0.02
    body = """
    [run]
    horizon_years = 1.0
    steps_per_year = 12
    [[underlyings]]
    name = "SPY"
    spot = 100.0
    dividend_yield = 0.02
    expected_return = {mu}
    volatility = 0.15
    jump_intensity = 3.0
    jump_mean = -0.05
    jump_std = 0.10
    """
    sc = scenario(tmp_path, body.format(mu=mu))
    m = simulate_market(sc, 200_000, seed=5)
    st = m.spot[:, -1, 0]
    se = st.std() / math.sqrt(st.size)
    check(st.mean(), se, 100.0 * math.exp(mu - q), 100.0 * math.exp(mu + 0.01 - q), "E[S_T] Merton")
    # jumps are really there: excess kurtosis of the step returns
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1).ravel()
    c = x - x.mean()
    assert np.mean(c**4) / np.mean(c**2) ** 2 > 3.5


REGIME3_TOML = """
[run]
horizon_years = 1.0
steps_per_year = 52
[regimes]
names = ["calm", "normal", "stress"]
mean_duration_days = [8, 5, 3]
exit_probabilities = [[0, 0.7, 0.3], [0.6, 0, 0.4], [0.3, 0.7, 0]]
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.01
expected_return = [0.20, 0.05, -0.40]
volatility = [0.10, 0.18, 0.40]
jump_intensity = [0.5, 2.0, 8.0]
jump_mean = [-0.02, -0.04, -0.08]
jump_std = [0.03, 0.05, 0.10]
"""


def test_three_regime_discounted_spot_is_martingale(tmp_path):
    sc = scenario(tmp_path, REGIME3_TOML)
    u = sc.underlyings[0]
    mu = np.array(u.expected_return)
    dt = sc.run.dt
    m = simulate_market(sc, 100_000, seed=9)
    reg = m.regime[:, :-1].astype(np.int64)  # regime in effect during each step
    assert len(np.unique(reg)) == 3
    disc = np.exp(-((mu[reg] - u.dividend_yield) * dt).sum(axis=1))
    y = m.spot[:, -1, 0] * disc
    se = y.std() / math.sqrt(y.size)
    # wrong: drift one point higher in every regime (E[S_T] then 1% above)
    check(y.mean(), se, 100.0, 100.0 * math.exp(0.01 * sc.run.n_steps * dt), "E[S_T exp(-int(mu-q))]")


# --------------------------------------------------------------------------------------------
# regimes

OCC_TOML = """
[run]
horizon_years = 1.0
[regimes]
names = ["calm", "normal", "stress"]
mean_duration_days = [20, 10, 5]
exit_probabilities = [[0, 0.7, 0.3], [0.6, 0, 0.4], [0.3, 0.7, 0]]
[[underlyings]]
name = "SPY"
spot = 100.0
volatility = [0.1, 0.2, 0.4]
"""


def _chain_stationary(durations, exits):
    n = len(durations)
    p = np.zeros((n, n))
    for i, d in enumerate(durations):
        leave = -math.expm1(-1.0 / d)
        for j in range(n):
            p[i, j] = 1.0 - leave if i == j else leave * exits[i][j]
    a = np.vstack([p.T - np.eye(n), np.ones(n)])
    b = np.zeros(n + 1)
    b[-1] = 1
    return np.linalg.lstsq(a, b, rcond=None)[0]


def test_regime_occupancy_matches_stationary_distribution(tmp_path):
    """Per-path time averages (paths are independent; the chain starts stationary, so each
    path's time average is unbiased for pi). SE = sd across paths / sqrt(n_paths), which
    accounts for the autocorrelation within a path."""
    sc = scenario(tmp_path, OCC_TOML)
    pi = sc.regimes.stationary()
    exits = [[0, 0.7, 0.3], [0.6, 0, 0.4], [0.3, 0.7, 0]]
    assert np.allclose(pi, _chain_stationary([20, 10, 5], exits))
    n_paths = 40_000
    occ = np.concatenate([
        np.stack([(reg == i).mean(axis=1) for i in range(3)], axis=1)
        for _, _, reg in chunks(sc, n_paths, seed=3)
    ])
    assert occ.shape == (n_paths, 3)
    for i in range(3):
        est = occ[:, i].mean()
        se = occ[:, i].std() / math.sqrt(n_paths)
        # wrong: regime i lasting 10% longer
        wrong = _chain_stationary([d * (1.1 if j == i else 1.0) for j, d in enumerate([20, 10, 5])], exits)
        check(est, se, pi[i], wrong[i], f"occupancy of regime {i}")
    # initial regime drawn from initial_probs (= stationary here)
    r0 = np.concatenate([reg[:, 0].copy() for _, _, reg in chunks(sc, n_paths, seed=3)])
    freq = np.bincount(r0, minlength=3) / n_paths
    assert np.all(np.abs(freq - pi) <= 4 * np.sqrt(pi * (1 - pi) / n_paths))


@pytest.mark.parametrize("start,dur", [("calm", 12.0), ("stress", 3.0)])
def test_mean_regime_stay_is_one_over_p(tmp_path, start, dur):
    """Start every path in `start`; the first stay is Geometric(p) with mean 1/p,
    p = 1 - exp(-1/d) (the discrete chain), iid across paths: SE = sd / sqrt(n)."""
    body = """
    [run]
    horizon_years = {h}
    [regimes]
    names = ["calm", "stress"]
    mean_duration_days = [12, 3]
    exit_probabilities = [[0, 1], [1, 0]]
    initial = "{start}"
    [[underlyings]]
    name = "SPY"
    spot = 100.0
    volatility = [0.1, 0.3]
    """
    n_steps = int(26 * dur) + 10
    sc = scenario(tmp_path, body.format(h=n_steps / 252, start=start))
    i = sc.regimes.names.index(start)
    p = -math.expm1(-1.0 / dur)
    stays = []
    for _, _, reg in chunks(sc, 100_000, seed=21):
        assert np.all(reg[:, 0] == i)
        left = reg != i
        assert left.any(axis=1).all()  # no censored stays
        stays.append(left.argmax(axis=1))
    s = np.concatenate(stays).astype(np.float64)
    se = s.std() / math.sqrt(s.size)
    # wrong: the continuous-time mean duration d instead of the discrete 1/p
    check(s.mean(), se, 1.0 / p, dur, f"mean stay in {start}")


# --------------------------------------------------------------------------------------------
# correlation

CORR_TOML = """
[run]
horizon_years = 1.0
steps_per_year = 50
[[underlyings]]
name = "A"
spot = 100.0
volatility = 0.2
[[underlyings]]
name = "B"
spot = 50.0
volatility = 0.3
[[underlyings]]
name = "C"
spot = 20.0
volatility = 0.15
[correlation]
matrix = [[1.0, 0.6, -0.3], [0.6, 1.0, 0.25], [-0.3, 0.25, 1.0]]
"""


def test_realised_correlation_matches_matrix(tmp_path):
    """Pooled step increments (iid over paths and steps); SE of a normal sample correlation
    (1 - rho^2) / sqrt(n)."""
    sc = scenario(tmp_path, CORR_TOML)
    c = sc.correlation_array()[0]
    m = simulate_market(sc, 40_000, seed=4)
    x = np.diff(np.log(m.spot), axis=1).reshape(-1, 3)
    n = x.shape[0]
    r = np.corrcoef(x.T)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        rho = c[i, j]
        se = (1 - r[i, j] ** 2) / math.sqrt(n)
        check(r[i, j], se, rho, rho + 0.02, f"corr[{i},{j}]")
    vols = np.array([0.2, 0.3, 0.15])
    sd = x.std(axis=0) * math.sqrt(50)
    assert np.allclose(sd, vols, rtol=0.002)


def test_per_regime_correlation_and_singular_matrix(tmp_path):
    body = """
    [run]
    horizon_years = 1.0
    steps_per_year = 50
    [regimes]
    names = ["a", "b"]
    transition = [[0.5, 0.5], [0.5, 0.5]]
    [[underlyings]]
    name = "A"
    spot = 100.0
    volatility = 0.2
    [[underlyings]]
    name = "B"
    spot = 100.0
    volatility = 0.2
    [correlation]
    per_regime = [[[1.0, 1.0], [1.0, 1.0]], [[1.0, -0.5], [-0.5, 1.0]]]
    """
    sc = scenario(tmp_path, body)
    b = matrix_sqrt(np.array([[1.0, 1.0], [1.0, 1.0]]))  # not positive definite: eigen fallback
    assert np.allclose(b @ b.T, [[1, 1], [1, 1]])
    m = simulate_market(sc, 20_000, seed=8)
    x = np.diff(np.log(m.spot), axis=1)
    reg = m.regime[:, :-1]
    xa, xb = x[reg == 0], x[reg == 1]
    assert np.allclose(xa[:, 0], xa[:, 1], atol=1e-12)  # perfectly correlated regime
    r = np.corrcoef(xb.T)[0, 1]
    se = (1 - r**2) / math.sqrt(len(xb))
    check(r, se, -0.5, -0.48, "corr in regime b")


# --------------------------------------------------------------------------------------------
# risk-neutral repricing

RN_TOML = """
[run]
horizon_years = 0.5
steps_per_year = 12
risk_free_rate = 0.04
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.02
expected_return = 0.04
volatility = 0.20
jump_intensity = {lam}
jump_mean = -0.10
jump_std = 0.15
"""


@pytest.mark.parametrize("is_call", [True, False])
def test_gbm_repricing_matches_black_scholes(tmp_path, is_call):
    sc = scenario(tmp_path, RN_TOML.format(lam=0.0))
    r, q, t, k = 0.04, 0.02, 0.5, 100.0
    m = simulate_market(sc, 400_000, seed=13)
    st = m.spot[:, -1, 0]
    pay = np.exp(-r * t) * (np.maximum(st - k, 0) if is_call else np.maximum(k - st, 0))
    se = pay.std() / math.sqrt(pay.size)
    price = float(pricing.bs_price(100.0, k, t, r, q, 0.20, is_call))
    wrong = float(pricing.bs_price(100.0, k, t, r, q, 0.21, is_call))
    check(pay.mean(), se, price, wrong, f"BS {'call' if is_call else 'put'}")


@pytest.mark.parametrize("is_call", [True, False])
def test_merton_repricing_matches_merton_price(tmp_path, is_call):
    lam = 1.0
    sc = scenario(tmp_path, RN_TOML.format(lam=lam))
    r, q, t, k = 0.04, 0.02, 0.5, 100.0
    m = simulate_market(sc, 400_000, seed=17)
    st = m.spot[:, -1, 0]
    pay = np.exp(-r * t) * (np.maximum(st - k, 0) if is_call else np.maximum(k - st, 0))
    se = pay.std() / math.sqrt(pay.size)
    price = float(pricing.merton_price(100.0, k, t, r, q, 0.20, lam, -0.10, 0.15, is_call))
    wrong = float(pricing.merton_price(100.0, k, t, r, q, 0.20, 1.5 * lam, -0.10, 0.15, is_call))
    check(pay.mean(), se, price, wrong, f"Merton {'call' if is_call else 'put'}")


# --------------------------------------------------------------------------------------------
# reproducibility

FULL_TOML = """
[run]
horizon_years = 0.1
[regimes]
names = ["calm", "stress"]
mean_duration_days = [10, 4]
exit_probabilities = [[0, 1], [1, 0]]
[[underlyings]]
name = "SPY"
spot = 100.0
volatility = [0.15, 0.35]
jump_intensity = [1.0, 20.0]
jump_mean = [-0.03, -0.06]
jump_std = [0.03, 0.08]
[underlyings.implied_vol]
premium = [0.02, 0.05]
shock_beta = 1.0
[[underlyings]]
name = "QQQ"
spot = 300.0
volatility = [0.2, 0.45]
jump_intensity = [0.0, 10.0]
jump_mean = -0.05
jump_std = 0.05
[correlation]
matrix = [[1.0, 0.8], [0.8, 1.0]]
[[shocks]]
day = 7
underlyings = ["SPY"]
log_return = -0.1
iv_add = 0.1
"""


@pytest.mark.parametrize("multi", [False, True])
def test_first_path_and_chunking_bit_identical(tmp_path, multi):
    sc = scenario(tmp_path, FULL_TOML if multi else REGIME3_TOML, ["run.horizon_years=0.4"] if not multi else [])
    p = market_params(sc)
    full = generate_market(p, 42, 0, 10_007)
    part = generate_market(p, 42, 4321, 1000)
    for a, b in zip(full, part):
        assert a.dtype == b.dtype
        assert np.array_equal(a[4321:5321], b)
    # any chunking, into reused buffers
    n_u = len(p.underlyings)
    out = (np.zeros((3000, p.n_steps + 1, n_u)), np.zeros((3000, p.n_steps + 1, n_u)),
           np.zeros((3000, p.n_steps + 1), np.int8))
    for first in range(0, 10_007, 3000):
        got = generate_market(p, 42, first, min(3000, 10_007 - first), out=out)
        for a, b in zip(full, got):
            assert np.array_equal(a[first:first + 3000], b)
    m = simulate_market(sc, 1000, 42, first_path=4321)
    assert m.first_path == 4321 and np.array_equal(m.spot, part[0])
    # other seeds differ
    assert not np.array_equal(generate_market(p, 43, 4321, 1000)[0], part[0])


def test_thread_count_does_not_change_results(tmp_path):
    sc = scenario(tmp_path, FULL_TOML)
    p = market_params(sc)
    one = generate_market(p, 7, 100, 5000, threads=1)
    two = generate_market(p, 7, 100, 5000, threads=2)
    three = generate_market(p, 7, 100, 5000, threads=3)
    for a, b, c in zip(one, two, three):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_covering_blocks_and_provenance():
    assert covering_blocks(4321, 1000) == [(4, 225, 799, 0), (5, 0, 201, 799)]
    assert covering_blocks(0, 2048) == [(0, 0, 1024, 0), (1, 0, 1024, 1024)]
    assert covering_blocks(5, 0) == []
    info = stream_info()
    assert info["block_paths"] == BLOCK == 1024 and info["bit_generator"] == "PCG64"


# --------------------------------------------------------------------------------------------
# shocks and the IV model

SHOCK_TOML = """
[run]
horizon_years = {h}
[[underlyings]]
name = "SPY"
spot = 100.0
volatility = 0.2
jump_intensity = 2.0
jump_mean = -0.05
jump_std = 0.05
[underlyings.implied_vol]
premium = 0.03
floor = 0.05
shock_beta = {beta}
shock_half_life_days = 10
[[underlyings]]
name = "QQQ"
spot = 300.0
volatility = 0.25
[correlation]
matrix = [[1.0, 0.7], [0.7, 1.0]]
"""

SHOCK_TABLE = """
[[shocks]]
day = {day}
underlyings = ["SPY"]
log_return = -0.2
iv_add = 0.15
"""


def test_scheduled_shock_moves_log_spot_exactly(tmp_path):
    d = 20
    base = scenario(tmp_path, SHOCK_TOML.format(h=40 / 252, beta=0.0))
    shocked = scenario(tmp_path, SHOCK_TOML.format(h=40 / 252, beta=0.0) + SHOCK_TABLE.format(day=d))
    a = simulate_market(base, 3000, seed=1)
    b = simulate_market(shocked, 3000, seed=1)
    diff = np.log(b.spot[:, :, 0]) - np.log(a.spot[:, :, 0])
    assert np.all(diff[:, :d] == 0.0)
    assert np.allclose(diff[:, d:], -0.2, rtol=0, atol=1e-12)
    assert not np.allclose(diff[:, d:], -0.19, rtol=0, atol=1e-12)  # negative control
    assert np.array_equal(a.spot[:, :, 1], b.spot[:, :, 1])  # QQQ not listed: untouched
    assert np.array_equal(a.regime, b.regime)
    # IV: with shock_beta = 0 the excess is iv_add * 0.5 ** ((t - d) / half_life) from day d on
    base_iv = shocked.underlyings[0].atm_iv_base()[0]
    assert np.all(a.atm_iv[:, :, 0] == base_iv)
    t = np.arange(41)
    expect = base_iv + np.where(t >= d, 0.15 * 0.5 ** ((t - d) / 10.0), 0.0)
    assert np.allclose(b.atm_iv[:, :, 0], expect[None, :], rtol=0, atol=1e-12)
    assert np.allclose(b.atm_iv[:, d + 10, 0] - base_iv, 0.075, atol=1e-12)  # one half-life later
    assert not np.allclose(b.atm_iv[:, d + 10, 0] - base_iv, 0.15 * 0.5 ** (10 / 11), atol=1e-4)  # wrong half-life
    assert np.array_equal(a.atm_iv[:, :, 1], b.atm_iv[:, :, 1])


def _iv_reference(spot, base, beta, half_life, floor, shock_iv, ret_mean):
    """Plain-Python ATM IV from the spot path (one regime): the spec's recursion, symmetric in
    the demeaned log return (up days take back what down days add)."""
    decay = 0.5 ** (1.0 / half_life)
    iv = np.empty_like(spot)
    e = 0.0
    iv[0] = max(floor, base)
    for t in range(1, len(spot)):
        x = math.log(spot[t] / spot[t - 1])
        e = e * decay - beta * (x - ret_mean) + shock_iv.get(t, 0.0)
        iv[t] = max(floor, base + e)
    return iv


def test_iv_shock_response_follows_recursion(tmp_path):
    beta = 1.5
    d = 15
    sc = scenario(tmp_path, SHOCK_TOML.format(h=60 / 252, beta=beta) + SHOCK_TABLE.format(day=d))
    m = simulate_market(sc, 200, seed=2)
    base = sc.underlyings[0].atm_iv_base()[0]
    xbar = float(market_params(sc).ret_mean[0, 0])
    lam, jm = 2.0, -0.05
    assert xbar == pytest.approx((0.07 - 0.5 * 0.2**2 - lam * math.expm1(jm + 0.5 * 0.05**2) + lam * jm) / 252, abs=1e-15)
    for i in range(0, 200, 20):
        ref = _iv_reference(m.spot[i, :, 0], base, beta, 10.0, 0.05, {d: 0.15}, xbar)
        assert np.allclose(m.atm_iv[i, :, 0], ref, rtol=0, atol=1e-9)
        wrong = _iv_reference(m.spot[i, :, 0], base, beta, 12.0, 0.05, {d: 0.15}, xbar)
        assert not np.allclose(m.atm_iv[i, :, 0], wrong, rtol=0, atol=1e-9)
        one_sided = _iv_reference(m.spot[i, :, 0], base, beta, 10.0, 0.05, {d: 0.15}, -1.0)  # old rule's shape
        assert not np.allclose(m.atm_iv[i, :, 0], one_sided, rtol=0, atol=1e-9)
    # a down day lifts IV by beta |x - E x| on top of the decayed excess
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1)
    assert np.all(x[:, d - 1] < -0.1)
    e_before = m.atm_iv[:, d - 1, 0] - base
    ok = m.atm_iv[:, d - 1, 0] > 0.05  # floor not binding the day before
    lift = m.atm_iv[:, d, 0] - base - e_before * 0.5 ** 0.1
    assert np.allclose(lift[ok], 0.15 - beta * (x[ok, d - 1] - xbar), rtol=0, atol=1e-9)
    # QQQ has beta 0: flat IV
    assert np.all(m.atm_iv[:, :, 1] == sc.underlyings[1].atm_iv_base()[0])
    assert (x < 0).any()


def test_iv_shock_decays_with_half_life(tmp_path):
    """Same seed with and without the scheduled shock: later returns are identical, so the IV
    difference is the shock-day add (iv_add plus the extra beta response to the gap) decaying
    by exactly one half per half-life (the floor never binds here)."""
    d, beta = 5, 0.8
    body = SHOCK_TOML.format(h=30 / 252, beta=beta)
    a = simulate_market(scenario(tmp_path, body), 500, seed=3)
    b = simulate_market(scenario(tmp_path, body + SHOCK_TABLE.format(day=d)), 500, seed=3)
    x = np.log(a.spot[:, d, 0] / a.spot[:, d - 1, 0])  # unshocked return of the shock day
    add = np.full_like(x, 0.15 + beta * 0.2)  # symmetric response: the gap adds beta * 0.2
    h = np.arange(0, 26)
    got = b.atm_iv[:, d:, 0] - a.atm_iv[:, d:, 0]
    assert np.allclose(got, add[:, None] * 0.5 ** (h / 10.0)[None, :], rtol=0, atol=1e-9)
    assert np.allclose(got[:, 10], 0.5 * got[:, 0], rtol=0, atol=1e-9)
    assert np.allclose(got[:, 20], 0.25 * got[:, 0], rtol=0, atol=1e-9)
    assert not np.allclose(got[:, 10], 0.5 ** (10 / 12) * got[:, 0], rtol=0, atol=1e-6)  # wrong half-life
    assert np.all(b.atm_iv[:, :d] == a.atm_iv[:, :d])


def test_shock_response_is_a_transient(tmp_path):
    """shock_beta = 2, no scheduled shock: the time-average ATM IV excess over the base is zero
    (within 0.01, and within 4 standard errors of the path means); the old one-sided rule sat
    near +0.12."""
    sc = scenario(tmp_path, SHOCK_TOML.format(h=2.0, beta=2.0))
    m = simulate_market(sc, 4000, seed=5)
    base = sc.underlyings[0].atm_iv_base()[0]
    per_path = (m.atm_iv[:, 60:, 0] - base).mean(axis=1)  # after a 60-day burn-in from e = 0
    est, se = per_path.mean(), per_path.std(ddof=1) / math.sqrt(len(per_path))
    assert abs(est) < 0.01 and abs(est) < TOL_SE * se + 0.002, (est, se)  # floor adds a little
    assert (m.atm_iv[:, :, 0] - base).std() > 0.03  # it does move: the response is on
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1)
    old = np.zeros(x.shape[0])
    e = np.zeros(x.shape[0])
    for t in range(x.shape[1]):  # negative control: the one-sided rule inflates IV for good
        e = e * 0.5 ** 0.1 + 2.0 * np.maximum(-x[:, t], 0.0)
        if t >= 59:
            old += e
    assert (old / (x.shape[1] - 59)).mean() > 0.05


def test_iv_floor_and_regime_base(tmp_path):
    body = """
    [run]
    horizon_years = 0.2
    [regimes]
    names = ["calm", "stress"]
    mean_duration_days = [5, 5]
    exit_probabilities = [[0, 1], [1, 0]]
    [[underlyings]]
    name = "SPY"
    spot = 100.0
    volatility = [0.10, 0.40]
    jump_intensity = [0.0, 3.0]
    jump_mean = -0.1
    jump_std = 0.1
    [underlyings.implied_vol]
    premium = [0.0, 0.05]
    floor = 0.15
    """
    sc = scenario(tmp_path, body)
    m = simulate_market(sc, 2000, seed=6)
    base = sc.underlyings[0].atm_iv_base()
    expect = np.maximum(0.15, base[m.regime])
    assert np.array_equal(m.atm_iv[:, :, 0], expect)
    assert np.isclose(base[1], math.sqrt(0.4**2 + 3.0 * (0.01 + 0.01)) + 0.05)
    assert set(np.unique(m.atm_iv[:, :, 0])) == {0.15, base[1]}


# --------------------------------------------------------------------------------------------
# MarketPaths


def test_market_paths_from_arrays():
    m = MarketPaths.from_arrays([100, 101, 99.5])
    assert m.spot.shape == (1, 3, 1) and m.regime.shape == (1, 3) and m.regime.dtype == np.int8
    assert m.underlyings == ("U0",) and m.n_steps == 2 and m.n_paths == 1 and m.steps_per_year == 252
    assert np.all(m.atm_iv == 0.20) and np.all(m.regime == 0)
    m2 = MarketPaths.from_arrays([[100, 90], [100, 110]], atm_iv=0.3, underlyings="SPY", first_path=7)
    assert m2.spot.shape == (2, 2, 1) and m2.underlyings == ("SPY",) and m2.first_path == 7
    m3 = MarketPaths.from_arrays([[100, 50], [101, 49]], atm_iv=[[0.2, 0.3], [0.25, 0.35]],
                                 regime=[0, 1], underlyings=("SPY", "QQQ"), steps_per_year=12)
    assert m3.spot.shape == (1, 2, 2) and m3.atm_iv[0, 1, 1] == 0.35 and m3.regime.tolist() == [[0, 1]]
    assert m3.dt == 1 / 12 and m3.underlying_index("QQQ") == 1
    with pytest.raises(ValueError):
        MarketPaths.from_arrays([100, -1])
    with pytest.raises(ValueError):
        MarketPaths.from_arrays([100, 101], atm_iv=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError):
        MarketPaths.from_arrays([100, 101], regime=[0, 1, 2])
    with pytest.raises(ValueError):
        MarketPaths.from_arrays([[100, 50]], underlyings=("A", "B", "C"))
    with pytest.raises(ValueError):
        MarketPaths(np.ones((1, 2, 1)), np.ones((1, 2, 1)), np.zeros((1, 2)), ("A",))  # regime not int8


def test_simulate_market_shapes_and_step_zero(tmp_path):
    sc = scenario(tmp_path, FULL_TOML)
    m = simulate_market(sc, 1500, seed=0)
    assert isinstance(m, mcsim.MarketPaths)
    assert m.spot.shape == (1500, sc.n_steps + 1, 2) and m.atm_iv.shape == m.spot.shape
    assert m.regime.shape == (1500, sc.n_steps + 1) and m.regime.dtype == np.int8
    assert m.underlyings == ("SPY", "QQQ") and m.steps_per_year == 252
    assert np.all(m.spot[:, 0] == [100.0, 300.0])
    assert np.all(np.isfinite(m.spot)) and np.all(m.spot > 0)
    with pytest.raises(ValueError):
        generate_market(market_params(sc), 0, 0, 10, out=(np.empty((5, 3, 2)),) * 3)
