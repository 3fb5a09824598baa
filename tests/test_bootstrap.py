"""Stationary block bootstrap of a price history (issue 14).

* Reproducibility: the same seed gives the same bits whatever the chunk size and thread count.
* Alignment: each step's return is one day of the history, taken jointly by all underlyings, and
  its IV is that day's close (an IV column that encodes its row proves it); without an IV
  column ATM IV is the path's own trailing 21-day realised vol plus the premium.
* Statistics against a GARCH history made here: mean, volatility and cross-correlation of daily
  returns within sampling error (tolerances from standard errors computed in the test), and the
  lag-1 autocorrelation of absolute returns closer to the history's than GBM's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mcsim
from mcsim.history import trailing_realised_vol

N_HIST = 4000


def _garch_history(seed=11, n=N_HIST):
    """Two correlated GARCH(1,1) return series (volatility clustering), as closes."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 2e-6, 0.09, 0.89
    h = np.full(2, omega / (1 - alpha - beta))
    r = np.empty((n, 2))
    for t in range(n):
        z = rng.standard_normal(2)
        z[1] = 0.7 * z[0] + np.sqrt(1 - 0.49) * z[1]
        r[t] = np.sqrt(h) * z + 0.0003
        h = omega + alpha * r[t] ** 2 + beta * h
    prices = np.vstack([[100.0, 50.0], 100.0 * np.exp(np.cumsum(r, axis=0)) * [1.0, 0.5]])
    return prices, r


def _scenario(tmp_path, iv=False, paths=400, years=1.0, block=20, extra=""):
    prices, r = _garch_history()
    df = pd.DataFrame({"date": pd.bdate_range("2000-01-03", periods=prices.shape[0]).strftime("%Y-%m-%d"),
                       "AAA": prices[:, 0], "BBB": prices[:, 1]})
    if iv:
        df["AAA_iv"] = 10.0 + 0.001 * np.arange(prices.shape[0])   # percent; encodes the row
    df.to_csv(tmp_path / "hist.csv", index=False)
    (tmp_path / "boot.toml").write_text(f"""
[run]
horizon_years = {years}
paths = {paths}
seed = 9
[market]
source = "bootstrap"
history = "hist.csv"
mean_block_days = {block}
[[underlyings]]
name = "AAA"
spot = 100.0
[underlyings.implied_vol]
premium = 0.02
[[underlyings]]
name = "BBB"
spot = 50.0
{extra}
[[strategies]]
name = "w"
kind = "wheel"
underlyings = ["AAA"]
[strategies.sizing]
contracts = "fractional"
""")
    return mcsim.load_scenario(tmp_path / "boot.toml"), prices, r


def test_same_bits_any_chunking_and_threads(tmp_path):
    sc, _, _ = _scenario(tmp_path, paths=1100, years=0.2)
    a = mcsim.simulate_market(sc, 1100, 5)
    b = mcsim.simulate_market(sc, 1100, 5, threads=1)
    parts = [mcsim.simulate_market(sc, k, 5, first_path=f) for f, k in ((0, 7), (7, 1017), (1024, 76))]
    for x in (b, *parts):
        assert x.spot.dtype == a.spot.dtype
    assert np.array_equal(a.spot, b.spot) and np.array_equal(a.atm_iv, b.atm_iv)
    assert np.array_equal(a.spot, np.concatenate([p.spot for p in parts]))
    assert np.array_equal(a.atm_iv, np.concatenate([p.atm_iv for p in parts]))
    r1 = mcsim.simulate(sc, n_paths=300, chunk_paths=37, threads=2)
    r2 = mcsim.simulate(sc, n_paths=300, chunk_paths=300, threads=1)
    pd.testing.assert_frame_equal(r1.per_path, r2.per_path)
    pd.testing.assert_frame_equal(r1.monthly, r2.monthly)
    c = mcsim.simulate_market(sc, 1100, 6)
    assert not np.array_equal(a.spot, c.spot)
    # replay of one bootstrap path equals that path in simulate
    log = mcsim.replay(sc, 123, "w")
    pp = r1.per_path.set_index(["strategy", "path"])
    assert log["equity"].iloc[-1] == pp.loc[("w", 123), "final_equity"]


def test_returns_are_joint_history_days_and_iv_aligned(tmp_path):
    sc, prices, r = _scenario(tmp_path, iv=True, paths=50, years=0.5)
    m = mcsim.simulate_market(sc, 50, 1)
    x = np.diff(np.log(m.spot), axis=1)                      # (P, n, 2)
    hist = np.diff(np.log(prices), axis=0)
    row = np.rint((m.atm_iv[:, :, 0] * 100.0 - 10.0) / 0.001).astype(int)   # the IV's row
    assert np.allclose(m.atm_iv[:, :, 0], (10.0 + 0.001 * row) / 100.0, atol=1e-12)
    j = row[:, 1:] - 1                                       # step t's return is r[row - 1]
    assert (j >= 0).all() and (j < hist.shape[0]).all()
    assert np.allclose(x[:, :, 0], hist[j, 0], atol=1e-10)
    assert np.allclose(x[:, :, 1], hist[j, 1], atol=1e-10)  # the same day for both underlyings
    # step 0's IV is the close before the first return
    assert np.array_equal(row[:, 0], j[:, 0])
    # BBB has no IV column: its path's trailing 21-day realised vol + premium 0 (floor 0.01)
    rv = trailing_realised_vol(x[:, :, 1].T, 252).T
    assert np.allclose(m.atm_iv[:, 21:, 1], np.maximum(rv[:, 20:], 0.01), rtol=1e-9)
    # blocks: consecutive history days in a row most of the time (mean block 20)
    cont = np.mean(np.diff(j, axis=1) == 1)
    assert 0.9 < cont < 0.99


def test_no_iv_warm_up_gives_full_window_at_step_0(tmp_path):
    sc, prices, _ = _scenario(tmp_path, paths=20, years=0.3)
    m = mcsim.simulate_market(sc, 20, 2)
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1)
    rv = trailing_realised_vol(x.T, 252).T
    assert np.allclose(m.atm_iv[:, 21:, 0], rv[:, 20:] + 0.02, rtol=1e-9)
    assert np.all(m.atm_iv[:, 0, 0] > 0.02)   # 21 warm-up returns behind step 0
    assert np.all(m.spot[:, 0, 0] == 100.0) and np.all(m.regime == 0)


def _acf1_abs(x):
    """Lag-1 autocorrelation of |x| along axis 1, pooled over rows (demeaned per row)."""
    a = np.abs(x)
    a = a - a.mean(axis=1, keepdims=True)
    return float((a[:, 1:] * a[:, :-1]).sum() / (a * a).sum())


def test_statistics_match_history_and_beat_gbm(tmp_path):
    paths = 400
    sc, prices, r = _scenario(tmp_path, paths=paths, years=2.0)
    m = mcsim.simulate_market(sc, paths, 3)
    x = np.diff(np.log(m.spot), axis=1)                      # (P, 504, 2)
    hist_mean = r.mean(axis=0)
    hist_sd = r.std(axis=0)
    for u in range(2):
        pm = x[:, :, u].mean(axis=1)
        se = pm.std(ddof=1) / np.sqrt(paths)
        assert abs(pm.mean() - hist_mean[u]) < 4 * se, (u, pm.mean(), hist_mean[u], se)
        ps = x[:, :, u].std(axis=1)
        se = ps.std(ddof=1) / np.sqrt(paths)
        assert abs(np.sqrt((ps**2).mean()) - hist_sd[u]) < 4 * se + 0.01 * hist_sd[u]
    pc = np.array([np.corrcoef(x[p, :, 0], x[p, :, 1])[0, 1] for p in range(paths)])
    hist_c = np.corrcoef(r.T)[0, 1]
    assert abs(pc.mean() - hist_c) < 4 * pc.std(ddof=1) / np.sqrt(paths) + 0.01
    # volatility clustering: the model twin (GBM with the history's vol and correlation) vs bootstrap
    acf_hist = _acf1_abs(r[:, 0][None, :])
    acf_boot = _acf1_abs(x[:, :, 0])
    vol = hist_sd * np.sqrt(252)
    raw = (tmp_path / "boot.toml").read_text()
    raw = raw.replace('source = "bootstrap"\nhistory = "hist.csv"\nmean_block_days = 20\n', "")
    raw = raw.replace('spot = 100.0\n', f'spot = 100.0\nvolatility = {vol[0]}\n')
    raw = raw.replace('spot = 50.0\n', f'spot = 50.0\nvolatility = {vol[1]}\n')
    (tmp_path / "gbm.toml").write_text(raw + f"\n[correlation]\nmatrix = [[1.0, {hist_c}], [{hist_c}, 1.0]]\n")
    gbm = mcsim.load_scenario(tmp_path / "gbm.toml")
    g = mcsim.simulate_market(gbm, paths, 3)
    acf_gbm = _acf1_abs(np.diff(np.log(g.spot[:, :, 0]), axis=1))
    assert acf_hist > 0.1                                   # the history does cluster
    assert abs(acf_boot - acf_hist) < abs(acf_gbm - acf_hist)
    assert abs(acf_boot - acf_hist) < 0.35 * acf_hist
    print(f"mean {x[:, :, 0].mean():.3e} vs {hist_mean[0]:.3e}; sd {x[:, :, 0].std():.5f} vs {hist_sd[0]:.5f}; "
          f"corr {pc.mean():.3f} vs {hist_c:.3f}; acf|r| boot {acf_boot:.3f} hist {acf_hist:.3f} gbm {acf_gbm:.3f}")


def test_bootstrap_scenario_errors(tmp_path):
    _scenario(tmp_path)
    raw = (tmp_path / "boot.toml").read_text()
    (tmp_path / "x.toml").write_text(raw.replace("mean_block_days = 20", "mean_block_days = 0.5"))
    with pytest.raises(mcsim.ScenarioError, match="market.mean_block_days"):
        mcsim.load_scenario(tmp_path / "x.toml")
    (tmp_path / "x.toml").write_text(raw.replace('name = "BBB"', 'name = "CCC"'))
    with pytest.raises(mcsim.ScenarioError, match='missing column "CCC"'):
        mcsim.load_scenario(tmp_path / "x.toml")
    (tmp_path / "x.toml").write_text(raw + "\n[[shocks]]\nday = 3\nlog_return = -0.1\n")
    with pytest.raises(mcsim.ScenarioError, match="shocks"):
        mcsim.load_scenario(tmp_path / "x.toml")
