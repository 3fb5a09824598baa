"""Stochastic variance (Heston, QE scheme), the 30-day ATM IV, common jumps, heston_price.

Monte Carlo checks pass within TOL_SE = 4 standard errors computed here; each has a negative
control (a clearly wrong parameter must fail the same check). Seeds are fixed.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mcsim
from mcsim import ScenarioError, pricing
from mcsim.market import generate_market, market_params, simulate_market

TOL_SE = 4.0


def scenario(tmp_path, body: str, overrides=()):
    p = tmp_path / f"h{abs(hash(body)) % 10**8}.toml"
    p.write_text(textwrap.dedent(body))
    return mcsim.load_scenario(p, overrides)


def mean_se(x):
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


RN = dict(spot=100.0, t=0.5, rate=0.03, div=0.01, v0=0.04, mean_reversion=3.0, long_run_var=0.04,
          vol_of_vol=0.8, spot_vol_correlation=-0.7)

RN_TOML = """
[run]
horizon_years = 0.5
risk_free_rate = 0.03
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.01
expected_return = 0.03
[underlyings.stochastic_vol]
mean_reversion = 3.0
long_run_vol = 0.2
vol_of_vol = 0.8
spot_vol_correlation = -0.7
initial_vol = 0.2
"""

REGIME_TOML = """
[run]
horizon_years = 1.0
[regimes]
names = ["calm", "normal", "stressed"]
mean_duration_days = [60, 40, 15]
exit_probabilities = [[0, 0.8, 0.2], [0.6, 0, 0.4], [0.2, 0.8, 0]]
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.015
expected_return = [0.10, 0.06, -0.20]
jump_intensity = [0.5, 1.5, 6.0]
jump_mean = [-0.02, -0.03, -0.06]
jump_std = [0.03, 0.04, 0.08]
[underlyings.stochastic_vol]
mean_reversion = 4.0
long_run_vol = [0.12, 0.17, 0.30]
vol_of_vol = 0.6
spot_vol_correlation = -0.7
[underlyings.implied_vol]
premium = [0.02, 0.03, 0.05]
floor = 0.05
"""


# --------------------------------------------------------------------------------------------
# the semi-analytic price


def test_heston_price_reference_parity_and_black_scholes_limit():
    # Fang & Oosterlee (2008), the COS paper's Heston test: reference call 5.785155450
    c = pricing.heston_price(spot=100.0, strike=100.0, t=1.0, rate=0.0, div=0.0, v0=0.0175,
                             mean_reversion=1.5768, long_run_var=0.0398, vol_of_vol=0.5751,
                             spot_vol_correlation=-0.5711, is_call=True)
    assert c == pytest.approx(5.785155450, abs=1e-7)
    for k in (70.0, 100.0, 140.0):
        call = pricing.heston_price(strike=k, is_call=True, **RN)
        put = pricing.heston_price(strike=k, is_call=False, **RN)
        assert call - put == pytest.approx(100.0 * math.exp(-0.01 * 0.5) - k * math.exp(-0.03 * 0.5), abs=1e-10)
        assert put > max(k * math.exp(-0.015) - 100.0 * math.exp(-0.005), 0.0)
    # vol of vol -> 0: Black-Scholes at the mean variance, second order in xi when rho = 0
    for v0 in (0.04, 0.09):
        kw = dict(RN, v0=v0, spot_vol_correlation=0.0)
        avg = 0.04 + (v0 - 0.04) * -math.expm1(-3.0 * 0.5) / (3.0 * 0.5)
        for k in (80.0, 100.0, 120.0):
            bs = pricing.bs_price(100.0, k, 0.5, 0.03, 0.01, math.sqrt(avg), False)
            h = pricing.heston_price(strike=k, is_call=False, **dict(kw, vol_of_vol=1e-3))
            assert h == pytest.approx(bs, abs=1e-5)
            assert abs(pricing.heston_price(strike=k, is_call=False, **dict(kw, vol_of_vol=0.3)) - bs) > 1e-3
    with pytest.raises(ValueError, match="heston_price"):
        pricing.heston_price(strike=-1.0, is_call=True, **RN)


# --------------------------------------------------------------------------------------------
# moments and prices of the simulated paths


def test_qe_variance_mean_and_discounted_spot(tmp_path):
    sc = scenario(tmp_path, RN_TOML, ["underlyings.SPY.stochastic_vol.initial_vol=0.12",
                                      "underlyings.SPY.expected_return=0.09"])
    m = simulate_market(sc, 40_000, seed=3)
    t = 0.5
    v_t = m.variance[:, -1, 0]
    exact = 0.04 + (0.0144 - 0.04) * math.exp(-3.0 * t)
    est, se = mean_se(v_t)
    assert abs(est - exact) <= TOL_SE * se, (est, se, exact)
    wrong = 0.04 + (0.0144 - 0.04) * math.exp(-2.0 * t)  # kappa 2 instead of 3
    assert abs(est - wrong) > TOL_SE * se
    assert m.variance.min() >= 0.0 and np.all(m.variance[:, 0, 0] == 0.0144)
    est, se = mean_se(m.spot[:, -1, 0] * math.exp(-(0.09 - 0.01) * t))
    assert abs(est - 100.0) <= TOL_SE * se, (est, se)
    assert abs(est - 100.0 * math.exp(-0.01 * t)) > TOL_SE * se  # negative control: forgetting q


def test_discounted_spot_with_regimes_and_jumps(tmp_path):
    """E[S_T exp(-sum (mu_r - q) dt)] = S_0 with three regimes, jumps and stochastic vol."""
    sc = scenario(tmp_path, REGIME_TOML)
    m = simulate_market(sc, 30_000, seed=4)
    mu = np.array([0.10, 0.06, -0.20])
    dt = 1 / 252
    growth = ((mu - 0.015)[m.regime[:, :-1]] * dt).sum(axis=1)
    est, se = mean_se(m.spot[:, -1, 0] * np.exp(-growth))
    assert abs(est - 100.0) <= TOL_SE * se, (est, se)
    wrong = m.spot[:, -1, 0] * np.exp(-((mu + 0.03 - 0.015)[m.regime[:, :-1]] * dt).sum(axis=1))
    assert abs(wrong.mean() - 100.0) > TOL_SE * se
    # default initial variance: long-run level of each path's initial regime
    theta = np.array([0.12, 0.17, 0.30]) ** 2
    assert np.array_equal(m.variance[:, 0, 0], theta[m.regime[:, 0]])
    assert len(np.unique(m.regime[:, 0])) == 3


def _rn_puts(m, strikes):
    s_t = m.spot[:, -1, 0]
    out = []
    for k in strikes:
        pay = np.maximum(k - s_t, 0.0) * math.exp(-0.03 * 0.5)
        out.append(mean_se(pay))
    return out


def test_heston_puts_match_semi_analytic_price(tmp_path):
    """Risk-neutral paths at daily steps price European puts at the Heston price; the same check
    against a wrong correlation or a wrong vol of vol fails."""
    sc = scenario(tmp_path, RN_TOML)
    m = simulate_market(sc, 200_000, seed=11)
    strikes = (80.0, 90.0, 100.0, 110.0)
    mc = _rn_puts(m, strikes)

    def passes(**wrong):
        kw = dict(RN, **wrong)
        return all(abs(est - pricing.heston_price(strike=k, is_call=False, **kw)) <= TOL_SE * se
                   for k, (est, se) in zip(strikes, mc))

    for k, (est, se) in zip(strikes, mc):
        ref = pricing.heston_price(strike=k, is_call=False, **RN)
        assert abs(est - ref) <= TOL_SE * se, (k, est, se, ref)
        assert se < 0.02 * ref
    assert passes()
    assert not passes(spot_vol_correlation=-0.4)
    assert not passes(vol_of_vol=0.5)
    assert not passes(spot_vol_correlation=0.0)


# --------------------------------------------------------------------------------------------
# ATM IV and the variance state


def test_atm_iv_follows_variance_with_term_structure(tmp_path):
    sc = scenario(tmp_path, REGIME_TOML, ["run.horizon_years=0.25"])
    m = simulate_market(sc, 500, seed=6)
    kappa, tau = 4.0, 30.0 / 365.0
    b = (1 - math.exp(-kappa * tau)) / (kappa * tau)
    theta = np.array([0.12, 0.17, 0.30]) ** 2
    lam, jm, js = np.array([0.5, 1.5, 6.0]), np.array([-0.02, -0.03, -0.06]), np.array([0.03, 0.04, 0.08])
    prem = np.array([0.02, 0.03, 0.05])
    g = m.regime
    th = theta[g]
    expect = np.maximum(0.05, np.sqrt(th + (m.variance[:, :, 0] - th) * b + (lam * (jm**2 + js**2))[g]) + prem[g])
    assert np.allclose(m.atm_iv[:, :, 0], expect, rtol=0, atol=1e-12)
    wrong = np.maximum(0.05, np.sqrt(m.variance[:, :, 0] + (lam * (jm**2 + js**2))[g]) + prem[g])  # no term structure
    assert not np.allclose(m.atm_iv[:, :, 0], wrong, rtol=0, atol=1e-4)
    # base IV of the scenario = the 30-day IV at the long-run level
    assert np.allclose(sc.underlyings[0].atm_iv_base(), np.sqrt(theta + lam * (jm**2 + js**2)) + prem)
    # returns and IV changes are negatively correlated (leverage)
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1).ravel()
    d_iv = np.diff(m.atm_iv[:, :, 0], axis=1).ravel()
    assert np.corrcoef(x, d_iv)[0, 1] < -0.25  # regime switches and jumps dilute it


def test_heston_streams_reproducible_and_price_stream_shared(tmp_path):
    sc = scenario(tmp_path, REGIME_TOML, ["run.horizon_years=0.2"])
    p = market_params(sc)
    n_u = 1
    var_full = np.empty((3000, p.n_steps + 1, n_u))
    full = generate_market(p, 9, 0, 3000, variance=var_full, threads=1)
    var_part = np.empty((700, p.n_steps + 1, n_u))
    part = generate_market(p, 9, 1500, 700, variance=var_part, threads=2)
    for a, b in zip(full, part):
        assert np.array_equal(a[1500:2200], b)
    assert np.array_equal(var_full[1500:2200], var_part)
    m = simulate_market(sc, 700, 9, first_path=1500, threads=3)
    assert np.array_equal(m.variance, var_part) and np.array_equal(m.spot, part[0])
    # the constant-vol twin consumes the price stream the same way: same regime paths
    sv_table = REGIME_TOML[REGIME_TOML.index("[underlyings.stochastic_vol]"):REGIME_TOML.index("[underlyings.implied_vol]")]
    twin = scenario(tmp_path, REGIME_TOML.replace(sv_table, "volatility = [0.12, 0.17, 0.30]\n"), ["run.horizon_years=0.2"])
    assert twin.underlyings[0].stochastic_vol is None
    tw = simulate_market(twin, 700, 9, first_path=1500)
    assert tw.variance is None
    assert np.array_equal(tw.regime, m.regime)
    assert not np.array_equal(tw.spot, m.spot)


@settings(max_examples=12, deadline=None)
@given(kappa=st.floats(0.2, 20.0), vol=st.floats(0.05, 0.8), xi=st.floats(0.05, 3.0),
       rho=st.floats(-1.0, 1.0), v0=st.floats(0.0, 1.0))
def test_qe_paths_stay_valid(tmp_path_factory, kappa, vol, xi, rho, v0):
    """Any parameters (Feller condition or not): variance >= 0, prices finite and > 0, IV >= floor."""
    body = RN_TOML.replace("mean_reversion = 3.0", f"mean_reversion = {kappa!r}").replace(
        "long_run_vol = 0.2", f"long_run_vol = {vol!r}").replace("vol_of_vol = 0.8", f"vol_of_vol = {xi!r}").replace(
        "spot_vol_correlation = -0.7", f"spot_vol_correlation = {rho!r}").replace("initial_vol = 0.2", f"initial_vol = {v0!r}")
    sc = scenario(tmp_path_factory.mktemp("qe"), body, ["run.horizon_years=0.1"])
    m = simulate_market(sc, 64, seed=1)
    assert np.all(m.variance >= 0.0) and np.all(np.isfinite(m.variance))
    assert np.all(np.isfinite(m.spot)) and np.all(m.spot > 0)
    assert np.all(m.atm_iv >= 0.01)


# --------------------------------------------------------------------------------------------
# common jumps

JUMPS_TOML = """
[run]
horizon_years = 1.0
[[underlyings]]
name = "A"
spot = 100.0
volatility = 0.01
jump_intensity = 25.0
jump_mean = -0.5
[[underlyings]]
name = "B"
spot = 50.0
volatility = 0.01
jump_intensity = 25.0
jump_mean = -0.4
jump_std = 0.02
[correlation]
common_jumps = {common}
"""


@pytest.mark.parametrize("common", [True, False])
def test_common_jumps_share_steps(tmp_path, common):
    sc = scenario(tmp_path, JUMPS_TOML.format(common=str(common).lower()))
    assert sc.common_jumps is common
    m = simulate_market(sc, 2000, seed=8)
    x = np.diff(np.log(m.spot), axis=1)
    jumped = x < -0.2  # a jump is -0.4 or -0.5, the diffusion 0.0006 a step
    rate = 1.0 - math.exp(-25.0 / 252)
    both = (jumped[:, :, 0] & jumped[:, :, 1]).ravel().astype(float)
    est, se = mean_se(both)
    for u in range(2):
        e1, s1 = mean_se(jumped[:, :, u].ravel().astype(float))
        assert abs(e1 - rate) <= TOL_SE * s1
    target, other = (rate, rate**2) if common else (rate**2, rate)
    assert abs(est - target) <= TOL_SE * se, (est, se, target)
    assert abs(est - other) > TOL_SE * se
    # sizes follow each underlying's own jump_mean / jump_std
    # (measured from the no-jump steps' level, which carries the jump compensation)
    ja = x[:, :, 0][jumped[:, :, 0]] - np.median(x[:, :, 0][~jumped[:, :, 0]])
    jb = x[:, :, 1][jumped[:, :, 1]] - np.median(x[:, :, 1][~jumped[:, :, 1]])
    assert abs(np.median(ja) - (-0.5)) < 0.005 and abs(np.median(jb) - (-0.4)) < 0.005
    mad = [np.median(np.abs(j - np.median(j))) for j in (ja, jb)]
    assert mad[1] > 5 * mad[0] and abs(mad[1] - 0.02 * 0.6745) < 0.002  # B's jump_std 0.02


def test_common_jumps_leave_other_scenarios_alone(tmp_path):
    """common_jumps = false gives the very paths of a scenario without the key."""
    a = simulate_market(scenario(tmp_path, JUMPS_TOML.format(common="false")), 300, seed=2)
    b = simulate_market(scenario(tmp_path, JUMPS_TOML.split("[correlation]")[0]), 300, seed=2)
    assert np.array_equal(a.spot, b.spot) and np.array_equal(a.atm_iv, b.atm_iv)


# --------------------------------------------------------------------------------------------
# scenario errors


@pytest.mark.parametrize("override, message", [
    ("underlyings.SPY.volatility=0.2",
     r"^underlyings\.SPY\.volatility: 0\.2 is not allowed \(must be absent when underlyings\.SPY\.stochastic_vol is set \(choose one\)\)$"),
    ("underlyings.SPY.stochastic_vol.vol_of_vol=-1",
     r"^underlyings\.SPY\.stochastic_vol\.vol_of_vol: -1\.0 is not allowed \(must be a number in \(0\.0, 20\.0\]\)$"),
    ("underlyings.SPY.stochastic_vol.spot_vol_correlation=-1.5",
     r"^underlyings\.SPY\.stochastic_vol\.spot_vol_correlation: -1\.5 is not allowed"),
    ("underlyings.SPY.stochastic_vol.long_run_vol=[0.1, 0.2]",
     r"^underlyings\.SPY\.stochastic_vol\.long_run_vol: \[0\.1, 0\.2\] is not allowed"),
    ("underlyings.SPY.stochastic_vol.vol_of_vols=1",
     r'^underlyings\.SPY\.stochastic_vol\.vol_of_vols: unknown key "vol_of_vols" \(did you mean "vol_of_vol"\?'),
])
def test_stochastic_vol_errors(tmp_path, override, message):
    with pytest.raises(ScenarioError, match=message):
        scenario(tmp_path, RN_TOML, [override])


def test_common_jumps_need_equal_intensities(tmp_path):
    with pytest.raises(ScenarioError, match=r"^underlyings\.B\.jump_intensity: \[20\.0\] is not allowed \(must be \[25\.0\] per regime, as for A \(correlation\.common_jumps = true\)\)$"):
        scenario(tmp_path, JUMPS_TOML.format(common="true"), ["underlyings.B.jump_intensity=20"])
    with pytest.raises(ScenarioError, match=r"^correlation\.common_jumps: 1 is not allowed \(must be true or false\)$"):
        scenario(tmp_path, JUMPS_TOML.format(common="1"))


def test_heston_beside_a_constant_vol_underlying(tmp_path):
    """The general loop (two underlyings, one with stochastic vol): E[v_T], both discounted
    spots, the constant-vol column of `variance`, the 30-day IV, positive return correlation."""
    body = RN_TOML.replace("initial_vol = 0.2", "initial_vol = 0.12") + """
    [[underlyings]]
    name = "QQQ"
    spot = 300.0
    volatility = 0.25
    expected_return = 0.08
    [correlation]
    matrix = [[1.0, 0.8], [0.8, 1.0]]
    """
    sc = scenario(tmp_path, body)
    m = simulate_market(sc, 30_000, seed=21)
    t = 0.5
    est, se = mean_se(m.variance[:, -1, 0])
    exact = 0.04 + (0.0144 - 0.04) * math.exp(-3.0 * t)
    assert abs(est - exact) <= TOL_SE * se and abs(est - 0.04) > TOL_SE * se
    assert np.all(m.variance[:, :, 1] == 0.25**2)
    for u, s0, mu, q in ((0, 100.0, 0.03, 0.01), (1, 300.0, 0.08, 0.0)):
        est, se = mean_se(m.spot[:, -1, u] * math.exp(-(mu - q) * t))
        assert abs(est - s0) <= TOL_SE * se, (u, est, se)
    b = -math.expm1(-3.0 * 30 / 365) / (3.0 * 30 / 365)
    assert np.allclose(m.atm_iv[:, :, 0], np.sqrt(0.04 + (m.variance[:, :, 0] - 0.04) * b), rtol=0, atol=1e-12)
    assert np.all(m.atm_iv[:, :, 1] == 0.25)
    # the return shocks carry the correlation, stochastic vol or not: SPY's return scaled by its
    # variance at the step's start (pooled raw returns are diluted by E[sqrt v] / sqrt(E v))
    x = np.diff(np.log(m.spot), axis=1)
    live = m.variance[:, :-1, 0] > 1e-4
    scaled = x[:, :, 0][live] / np.sqrt(m.variance[:, :-1, 0][live])
    c = np.corrcoef(scaled, x[:, :, 1][live])[0, 1]
    assert abs(c - 0.8) < 0.04, c  # (the step mixes v_t and v_{t+1}: 0.77 here)
    assert np.corrcoef(x[:, :, 0].ravel(), x[:, :, 1].ravel())[0, 1] < 0.75


def test_options_are_priced_on_the_heston_term_structure(tmp_path):
    """The strategy kernels' ATM IV for an option k steps from expiry (`atm_for`) is the issue's
    sqrt(theta + (v - theta) B(tau) + jump variance) + premium of the market's variance, inside
    the tau table and beyond it; flat (the 30-day IV) for constant-vol underlyings."""
    from mcsim.strategies.layout import Market
    from mcsim.strategies.params import all_strategies, to_kernel
    from mcsim.strategies.positions import atm_for

    sc = scenario(tmp_path, REGIME_TOML, ["run.horizon_years=0.25"])
    m = simulate_market(sc, 20, seed=11)
    rules = to_kernel(all_strategies(sc)[0], sc).rules
    spy, kappa = sc.run.steps_per_year, 4.0
    theta = np.array([0.12, 0.17, 0.30]) ** 2
    jv = np.array([0.5, 1.5, 6.0]) * (np.array([-0.02, -0.03, -0.06]) ** 2 + np.array([0.03, 0.04, 0.08]) ** 2)
    prem = np.array([0.02, 0.03, 0.05])
    L = int(rules.p[0]["tab_len"])
    got, want, flat = [], [], []
    for p in range(m.n_paths):
        mk = Market(m.spot[p], m.atm_iv[p], m.regime[p])
        for t in range(0, m.n_steps + 1, 7):
            g, v = int(m.regime[p, t]), float(m.variance[p, t, 0])
            for k in (0, 1, 5, 21, L - 1, L, L + 40, 250):
                tau = k / spy
                b = (1 - math.exp(-kappa * tau)) / (kappa * tau) if k else 1.0
                want.append(max(0.05, math.sqrt(theta[g] + (v - theta[g]) * b + jv[g]) + prem[g]))
                got.append(atm_for(t, 0, k, mk, rules))
                flat.append(m.atm_iv[p, t, 0])
    got, want, flat = map(np.array, (got, want, flat))
    assert np.abs(got - want).max() < 1e-12
    assert np.abs(flat - want).max() > 0.01  # negative control: a flat curve is clearly off
    # a constant-vol twin: the curve is flat
    twin = scenario(tmp_path, RN_TOML.replace("[underlyings.stochastic_vol]", "volatility = 0.2\n[x]")
                    .split("[x]")[0])
    mt = simulate_market(twin, 2, seed=1)
    rt = to_kernel(all_strategies(twin)[0], twin).rules
    mk = Market(mt.spot[0], mt.atm_iv[0], mt.regime[0])
    assert all(atm_for(3, 0, k, mk, rt) == mt.atm_iv[0, 3, 0] for k in (0, 2, 40, 400))
