"""Analytic truths the strategy engine must reproduce.

(a) Martingale: under a risk-neutral drift, IV = realised vol, no costs, no early assignment,
    fractional contracts and options held to expiry, selling options at the Black-Scholes mid earns
    nothing on average beyond cash: E[final equity - cash baseline] = 0 for put writing, a bull put
    spread and the wheel (the discounted equity of a self-financing book of fairly priced claims is
    a martingale; dividend_yield 0 keeps the share phase a martingale too). A positive IV premium
    makes it positive, a negative one negative, each beyond 4 standard errors.
(b) One period: the share of 30-day puts that end in the money is N(-d2) under the real-world
    drift mu - q and the realised vol (not the pricing measure).
(c) A bull put spread's P&L lies in [-(width - credit) - costs, credit] on any path, and both ends
    are reached exactly on hand-made paths.

Monte Carlo tolerances are multiples of the standard error computed here. Figures are printed
(run with `-s`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import mcsim
from mcsim.market import MarketPaths
from mcsim.pricing import bs_price, round_strike_nb, strike_for_delta
from mcsim.scenario import load_scenario

SPY = 252
N_PATHS = 100_000


def cal_steps(days: float) -> int:
    return max(1, int(round(days * SPY / 365)))


def nearest_expiry(t: int, target: int, after: int, every: int) -> int:
    cands = [every * k for k in range(after // every + 1, target // every + 3) if every * k > after]
    return min(cands, key=lambda e: (abs(e - target), -e))


def final_by_path(res, strategy):
    pp = res.per_path
    rows = pp[pp["strategy"] == strategy].sort_values("path")
    return rows


# ------------------------------------------------------------------------------------------
# (a) martingale check

MARTINGALE = """
[run]
horizon_years = 0.25
steps_per_year = 252
paths = {n_paths}
seed = 20260
initial_equity = 100000.0
risk_free_rate = 0.04

[[underlyings]]
name = "X"
spot = 100.0
dividend_yield = 0.0
expected_return = 0.04
volatility = 0.20
strike_step = 1.0
expiry_every_days = 5
[underlyings.implied_vol]
premium = {premium!r}
skew = 0.0
floor = 0.001

[costs]
commission_per_contract = 0.0
slippage_per_share = 0.0
slippage_pct = 0.0
assignment_fee = 0.0

[[strategies]]
name = "put_write"
kind = "put_write"
entry_every_days = 5
[strategies.put]
delta = 0.30
dte = 30
[strategies.manage]
early_assignment = false
[strategies.sizing]
position_fraction = 1.0
contracts = "fractional"

[[strategies]]
name = "spread"
kind = "bull_put_spread"
entry_every_days = 5
width = 5.0
[strategies.short_put]
delta = 0.30
dte = 30
[strategies.manage]
early_assignment = false
[strategies.sizing]
position_fraction = 0.25
contracts = "fractional"
max_open = 1

[[strategies]]
name = "wheel"
kind = "wheel"
entry_every_days = 5
[strategies.put]
delta = 0.30
dte = 30
[strategies.call]
delta = 0.30
dte = 30
min_strike = "cost_basis"
[strategies.manage]
early_assignment = false
[strategies.sizing]
position_fraction = 1.0
contracts = "fractional"
"""

FIGURES: dict = {}


def martingale_figures(tmp_path_factory, premium):
    if premium in FIGURES:
        return FIGURES[premium]
    p = tmp_path_factory.mktemp("mart") / "martingale.toml"
    p.write_text(MARTINGALE.format(n_paths=N_PATHS, premium=premium))
    scn = load_scenario(p)
    res = mcsim.simulate(scn, n_paths=N_PATHS, seed=20260)
    cash = final_by_path(res, "cash")
    out = {}
    for name in ("put_write", "spread", "wheel"):
        rows = final_by_path(res, name)
        assert np.array_equal(rows["path"].to_numpy(), cash["path"].to_numpy())
        d = rows["final_equity"].to_numpy() - cash["final_equity"].to_numpy()
        mean, se = d.mean(), d.std(ddof=1) / math.sqrt(len(d))
        out[name] = (mean, se, float(rows["options_sold"].mean()), int(rows["options_sold"].sum()))
        print(f"martingale premium={premium:+.2f} {name:9s}: mean(final - cash) = {mean:10.3f} "
              f"+- {se:.3f} (z = {mean / se:+7.2f}), options_sold {out[name][2]:.3f}/path "
              f"({out[name][3]} total), paths {len(d)}")
    FIGURES[premium] = out
    return out


def test_martingale_fair_iv_earns_nothing(tmp_path_factory):
    figs = martingale_figures(tmp_path_factory, 0.0)
    for name, (mean, se, sold, _) in figs.items():
        assert sold > 2.0, name  # options were actually sold, roughly one per expiry cycle
        assert abs(mean) < 4 * se, f"{name}: {mean:.3f} +- {se:.3f}"


@pytest.mark.parametrize("premium,sign", [(0.04, +1), (-0.02, -1)])
def test_martingale_iv_premium_has_the_sign_of_the_premium(tmp_path_factory, premium, sign):
    figs = martingale_figures(tmp_path_factory, premium)
    for name, (mean, se, sold, _) in figs.items():
        assert sold > 2.0, name
        assert sign * mean > 4 * se, f"{name}: {mean:.3f} +- {se:.3f}"


# ------------------------------------------------------------------------------------------
# (b) one period: P(assigned) = N(-d2) under the real-world measure

ONE_PERIOD = """
[run]
horizon_years = {horizon!r}
steps_per_year = 252
paths = {n_paths}
seed = 777
initial_equity = 100000.0
risk_free_rate = {r!r}

[[underlyings]]
name = "X"
spot = 100.0
dividend_yield = {q!r}
expected_return = {mu!r}
volatility = {vol!r}
strike_step = 1.0
expiry_every_days = 1
[underlyings.implied_vol]
premium = {premium!r}
skew = 0.0
floor = 0.01

[[strategies]]
name = "pw"
kind = "put_write"
entry_every_days = 1000
[strategies.put]
{rule}
dte = 30
[strategies.manage]
early_assignment = false
[strategies.sizing]
position_fraction = 1.0
contracts = "integer"
"""


@pytest.mark.parametrize("rule", ["otm_pct = 0.05", "delta = 0.35"])
def test_one_period_assignment_probability_is_n_minus_d2(tmp_path, rule):
    r, q, mu, vol, premium = 0.03, 0.02, 0.12, 0.25, 0.03
    e = cal_steps(30)
    assert e == 21  # expiries every step: the put expires at step 21
    tau = e / SPY
    atm = vol + premium  # ATM IV: realised vol plus the premium (no jumps)
    if rule.startswith("otm"):
        k = float(round_strike_nb(100.0 * 0.95, 1.0, False))
    else:
        k = float(round_strike_nb(strike_for_delta(100.0, 0.35, tau, r, q, atm, False, 0.0, 0.01),
                                  1.0, False))
    p = tmp_path / "one.toml"
    p.write_text(ONE_PERIOD.format(horizon=25 / SPY, n_paths=N_PATHS, r=r, q=q, mu=mu, vol=vol,
                                   premium=premium, rule=rule))
    scn = load_scenario(p)
    res = mcsim.simulate(scn, n_paths=N_PATHS, seed=777)
    rows = final_by_path(res, "pw")
    assert (rows["puts_sold"] == 1).all()  # one put per path, sold at t = 0
    assigned = rows["assignments"].to_numpy()
    assert set(np.unique(assigned)) <= {0, 1}
    frac = assigned.mean()

    def n_minus_d2(drift, sigma):
        d2 = (math.log(100.0 / k) + (drift - 0.5 * sigma**2) * tau) / (sigma * math.sqrt(tau))
        return norm.cdf(-d2)

    expected = n_minus_d2(mu - q, vol)
    se = math.sqrt(expected * (1 - expected) / len(assigned))
    wrong_drift = n_minus_d2(r - q, vol)  # the pricing measure's drift
    wrong_vol = n_minus_d2(mu - q, atm)  # implied instead of realised vol
    print(f"one-period {rule}: K = {k:g}, assigned fraction {frac:.5f} vs N(-d2) = {expected:.5f} "
          f"+- {se:.5f} (z = {(frac - expected) / se:+.2f}); risk-neutral drift {wrong_drift:.5f} "
          f"(z = {(frac - wrong_drift) / se:+.1f}), implied vol {wrong_vol:.5f} "
          f"(z = {(frac - wrong_vol) / se:+.1f})")
    assert abs(frac - expected) < 4 * se
    # negative controls: the test tells the real-world measure from the pricing one
    assert abs(frac - wrong_drift) > 4 * se
    assert abs(frac - wrong_vol) > 4 * se


# ------------------------------------------------------------------------------------------
# (c) bull put spread P&L bounds

SPREAD = """
[run]
horizon_years = {horizon!r}
steps_per_year = 252
paths = 1
seed = 1
initial_equity = {equity!r}
risk_free_rate = 0.0

[[underlyings]]
name = "X"
spot = 100.0
dividend_yield = 0.0
expected_return = 0.0
volatility = 0.3
strike_step = 1.0
expiry_every_days = {every}
[underlyings.implied_vol]
premium = 0.0
skew = 0.0
floor = 0.01

[costs]
commission_per_contract = {comm!r}
slippage_per_share = {sps!r}
slippage_pct = {spct!r}
assignment_fee = {fee!r}

[[strategies]]
name = "bps"
kind = "bull_put_spread"
entry_every_days = 1000
width = {width!r}
[strategies.short_put]
otm_pct = {otm!r}
dte = {dte}
[strategies.manage]
profit_take = {profit_take!r}
stop_loss = {stop_loss!r}
close_dte = {close_dte}
early_assignment = {early}
early_assignment_time_value = 0.05
[strategies.sizing]
position_fraction = {pf!r}
contracts = "{contracts}"
"""


def spread_scenario(path, *, n_steps, equity=10000.0, every=5, comm=0.65, sps=0.02, spct=0.01, fee=1.0,
                    width=5.0, otm=0.02, dte=7, profit_take=0.0, stop_loss=0.0, close_dte=0, early=True,
                    pf=0.2, contracts="integer"):
    path.write_text(SPREAD.format(horizon=n_steps / SPY, equity=equity, every=every, comm=comm, sps=sps,
                                  spct=spct, fee=fee, width=width, otm=otm, dte=dte,
                                  profit_take=profit_take, stop_loss=stop_loss, close_dte=close_dte,
                                  early="true" if early else "false", pf=pf, contracts=contracts))
    scn = load_scenario(path)
    assert scn.run.n_steps == n_steps
    return scn


def opening(s0, iv0, *, equity, every, comm, sps, spct, width, otm, dte, pf, contracts):
    """Strikes, expiry, net credit per share and contracts of the t = 0 spread, from the formulas."""
    e = nearest_expiry(0, cal_steps(dte), 0, every)
    ks = np.array([float(round_strike_nb(s * (1 - otm), 1.0, False)) for s in np.atleast_1d(s0)])
    kl = np.array([float(round_strike_nb(k - width, 1.0, False)) for k in ks])
    tau = e / SPY
    ms = bs_price(s0, ks, tau, 0.0, 0.0, iv0, False)
    ml = bs_price(s0, np.maximum(kl, 1e-300), tau, 0.0, 0.0, iv0, False)
    fs = np.maximum(ms - (sps + spct * ms), 0.0)
    fl = ml + sps + spct * ml
    credit = fs - fl
    w = ks - kl
    risk = (w - credit) * 100
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.minimum(pf * equity / risk, equity / (risk + 2 * comm))
    if contracts == "integer":
        c = np.floor(c)
    ok = (kl > 0) & (credit > 0) & (credit < w) & (c > 0)
    c = np.where(ok, c, 0.0)
    return ks, kl, e, credit, c, ok


@pytest.mark.parametrize("s_exp,bound", [(70.0, "lower"), (100.0, "upper")])
def test_spread_bounds_reached_on_handmade_paths(tmp_path, s_exp, bound):
    comm, sps, spct = 0.65, 0.02, 0.01
    spot = [100.0] * 5 + [s_exp]  # the spread expires at t = 5
    scn = spread_scenario(tmp_path / "s.toml", n_steps=5, comm=comm, sps=sps, spct=spct)
    ks, kl, e, credit, c, ok = opening(100.0, 0.3, equity=10000.0, every=5, comm=comm, sps=sps, spct=spct,
                                       width=5.0, otm=0.02, dte=7, pf=0.2, contracts="integer")
    ks, kl, credit, c = ks[0], kl[0], float(credit[0]), float(c[0])
    assert ok[0] and (ks, kl, e) == (98.0, 93.0, 5) and c >= 1
    mkt = MarketPaths.from_arrays(np.array(spot), atm_iv=0.3, underlyings=("X",), steps_per_year=SPY)
    res = mcsim.run_strategies(scn, mkt)
    row = final_by_path(res, "bps").iloc[0]
    pnl = row["final_equity"] - 10000.0
    costs = 2 * comm * c  # opening commissions, two legs; expiry is free
    lo = -(ks - kl - credit) * 100 * c - costs
    hi = credit * 100 * c - costs
    assert row["premium_collected"] == pytest.approx(credit * 100 * c, rel=1e-9)
    assert pnl == pytest.approx(lo if bound == "lower" else hi, rel=1e-9, abs=1e-9)
    assert int(row["assignments"]) == (bound == "lower")
    assert int(row["expired_worthless"]) == (bound == "upper")


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    vol=st.floats(0.05, 1.2),
    crash=st.floats(0.0, 0.6),
    every=st.integers(1, 5),
    width=st.integers(1, 15),
    otm=st.floats(0.0, 0.15),
    dte=st.integers(3, 30),
    profit_take=st.sampled_from([0.0, 0.25, 0.5, 0.8]),
    stop_loss=st.sampled_from([0.0, 1.5, 2.0, 4.0]),
    close_dte=st.sampled_from([0, 1, 3]),
    early=st.booleans(),
    comm=st.floats(0.0, 2.0),
    sps=st.floats(0.0, 0.1),
    spct=st.floats(0.0, 0.05),
    fee=st.floats(0.0, 5.0),
    pf=st.floats(0.01, 0.5),
    contracts=st.sampled_from(["integer", "fractional"]),
)
def test_spread_pnl_within_bounds(tmp_path, seed, vol, crash, every, width, otm, dte, profit_take, stop_loss,
                                  close_dte, early, comm, sps, spct, fee, pf, contracts):
    """Single spread at t = 0 (r = 0, no skew), random paths with crashes and moving IV."""
    n_paths, n_steps, equity = 64, 25, 100000.0
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((n_paths, n_steps)) * vol / math.sqrt(SPY)
    jumps = np.where(rng.random((n_paths, n_steps)) < 0.05, math.log1p(-crash) * rng.random((n_paths, n_steps)), 0.0)
    logs = np.concatenate([np.zeros((n_paths, 1)), np.cumsum(steps + jumps, axis=1)], axis=1)
    spot = 100.0 * np.exp(logs)
    iv = rng.uniform(0.1, 0.9, size=spot.shape)
    scn = spread_scenario(tmp_path / f"h{seed}.toml", n_steps=n_steps, equity=equity, every=every, comm=comm,
                          sps=sps, spct=spct, fee=fee, width=float(width), otm=otm, dte=dte,
                          profit_take=profit_take, stop_loss=stop_loss, close_dte=close_dte, early=early,
                          pf=pf, contracts=contracts)
    mkt = MarketPaths.from_arrays(spot, atm_iv=iv, underlyings=("X",), steps_per_year=SPY)
    res = mcsim.run_strategies(scn, mkt)
    rows = final_by_path(res, "bps")
    assert rows["path"].tolist() == list(range(n_paths))
    pnl = rows["final_equity"].to_numpy() - equity

    ks, kl, e, credit, c, ok = opening(spot[:, 0], iv[:, 0], equity=equity, every=every, comm=comm, sps=sps,
                                       spct=spct, width=float(width), otm=otm, dte=dte, pf=pf,
                                       contracts=contracts)
    prem = rows["premium_collected"].to_numpy()
    np.testing.assert_allclose(prem, np.where(ok, credit * 100 * c, 0.0), rtol=1e-9, atol=1e-9)
    assert (rows["spreads_sold"].to_numpy() == ok.astype(int)).all()
    cr = np.where(ok, credit, 0.0)
    w = ks - kl
    # every cost a spread can pay: 2 legs opened and closed, one assignment fee, closing slippage on
    # both legs (a put's mid is at most its strike at r = 0)
    costs = c * (4 * comm + fee) + 100 * c * (2 * sps + spct * (ks + kl))
    lower = -(w - cr) * 100 * c - costs
    upper = cr * 100 * c
    tol = 1e-9 * equity
    assert (pnl >= lower - tol).all(), np.flatnonzero(pnl < lower - tol)
    assert (pnl <= upper + tol).all(), np.flatnonzero(pnl > upper + tol)
    assert np.all(pnl[~ok] == 0.0)
