"""mcsim.metrics on small hand-made results that follow the `Result` table contract exactly.

Expected values are computed here from the definitions (by hand or with plain numpy on the
input arrays), never from the metrics module's own output.
"""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mcsim import metrics
from mcsim.scenario import parse_scenario

INITIAL = 100_000.0
Z = 1.959963984540054

PP_DEFAULTS = {
    "final_equity": INITIAL, "total_return": 0.0, "cagr": 0.0, "ann_vol": 0.1, "sharpe": 0.5, "sortino": 0.7,
    "max_drawdown": -0.05, "max_drawdown_days": 10, "min_equity": 95_000.0, "ruined": False,
    "premium_collected": 0.0, "realised_pnl": 0.0, "options_sold": 0, "puts_sold": 0, "calls_sold": 0,
    "spreads_sold": 0, "assignments": 0, "called_away": 0, "early_assignments": 0, "expired_worthless": 0,
    "rolls": 0, "profit_takes": 0, "stop_losses": 0, "closes": 0, "trades_won": 0, "trades_lost": 0,
    "avg_win": np.nan, "avg_loss": np.nan, "days_in_shares": 0, "capital_used": 0.0, "withdrawn": 0.0,
    "shortfalls": 0, "first_shortfall_month": -1, "dominant_regime": 0, "stressed_share": 0.0,
}
INT_COLS = {"max_drawdown_days", "options_sold", "puts_sold", "calls_sold", "spreads_sold", "assignments",
            "called_away", "early_assignments", "expired_worthless", "rolls", "profit_takes", "stop_losses",
            "closes", "trades_won", "trades_lost", "days_in_shares", "shortfalls", "first_shortfall_month",
            "dominant_regime"}

RAW = {
    "title": "hand-made",
    "run": {"horizon_years": 0.5, "steps_per_year": 252, "paths": 4, "seed": 7, "initial_equity": INITIAL,
            "risk_free_rate": 0.04, "ruin_level": 0.5},
    "regimes": {"names": ["calm", "stressed"], "mean_duration_days": [50.0, 10.0],
                "exit_probabilities": [[0.0, 1.0], [1.0, 0.0]]},
    "underlyings": [{"name": "SPY", "spot": 100.0, "volatility": [0.15, 0.35]}],
    "strategies": [{"name": "wheel", "kind": "wheel"}],
}


def per_path_frame(strategy: str, n: int, **cols) -> pd.DataFrame:
    """Rows of one strategy, contract columns, defaults overridden by `cols` (scalars or arrays)."""
    data = {"strategy": [strategy] * n, "path": np.arange(n, dtype=np.int64)}
    for c, d in PP_DEFAULTS.items():
        v = cols.pop(c, d)
        data[c] = np.broadcast_to(np.asarray(v), (n,)).copy()
    assert not cols, f"unknown columns {sorted(cols)}"
    df = pd.DataFrame(data)
    for c in INT_COLS:
        df[c] = df[c].astype(np.int64)
    df["ruined"] = df["ruined"].astype(bool)
    return df


def monthly_frame(strategy: str, n_paths: int, n_months: int, *, premium=0.0, realised_pnl=0.0,
                  mtm_return=0.0, equity=None, withdrawn=0.0, shortfall=False, partial_last=False) -> pd.DataFrame:
    """Rows (path, month) in path-major order; array arguments have shape (n_paths, n_months)."""
    def grid(v):
        return np.broadcast_to(np.asarray(v, dtype=np.float64), (n_paths, n_months)).ravel()

    eq = INITIAL * np.cumprod(1 + np.broadcast_to(np.asarray(mtm_return, float), (n_paths, n_months)), axis=1) \
        if equity is None else equity
    partial = np.zeros((n_paths, n_months), bool)
    if partial_last:
        partial[:, -1] = True
    return pd.DataFrame({
        "strategy": strategy,
        "path": np.repeat(np.arange(n_paths, dtype=np.int64), n_months),
        "month": np.tile(np.arange(n_months, dtype=np.int64), n_paths),
        "premium": grid(premium), "realised_pnl": grid(realised_pnl), "mtm_return": grid(mtm_return),
        "withdrawn": grid(withdrawn), "shortfall": np.broadcast_to(np.asarray(shortfall), (n_paths, n_months)).ravel(),
        "equity": grid(eq), "partial": partial.ravel(),
    })


def make_result(per_path: pd.DataFrame, monthly: pd.DataFrame, raw: dict = RAW, names=None):
    sc = parse_scenario(raw)
    names = tuple(names or pd.unique(per_path["strategy"]))
    n = int(per_path["path"].nunique())
    return types.SimpleNamespace(per_path=per_path, monthly=monthly, scenario=sc, seed=sc.run.seed, n_paths=n,
                                 n_steps=sc.run.n_steps, chunk_paths=1024, block_paths=1024, wall_time=0.5,
                                 path_steps_per_second=n * sc.run.n_steps / 0.5, strategies=names)


def synthetic_result(n_paths: int = 300, n_months: int = 6, seed: int = 0, partial_last: bool = True):
    """A random but contract-conforming result: wheel, buy_and_hold, cash on common paths."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0.006, 0.045, (n_paths, n_months))
    pps, mos = [], []
    for s in ("wheel", "buy_and_hold", "cash"):
        if s == "cash":
            r = np.full((n_paths, n_months), 0.0033)
        elif s == "wheel":
            r = 0.6 * common + 0.002 + rng.normal(0, 0.006, (n_paths, n_months))
        else:
            r = common
        eq = INITIAL * np.cumprod(1 + r, axis=1)
        full = np.hstack([np.full((n_paths, 1), INITIAL), eq])
        dd = (full / np.maximum.accumulate(full, axis=1) - 1).min(axis=1)
        fe = eq[:, -1]
        opt = s == "wheel"
        sold = rng.integers(3, 7, n_paths) if opt else 0
        pps.append(per_path_frame(
            s, n_paths, final_equity=fe, total_return=fe / INITIAL - 1, cagr=(fe / INITIAL) ** 2 - 1,
            max_drawdown=dd, min_equity=full.min(axis=1), ruined=full.min(axis=1) < 0.5 * INITIAL,
            sharpe=np.nan if s == "cash" else rng.normal(0.5, 0.3, n_paths),
            premium_collected=rng.normal(3000, 300, n_paths) if opt else 0.0,
            realised_pnl=rng.normal(1500, 900, n_paths), options_sold=sold,
            puts_sold=np.maximum(sold - 2, 0) if opt else 0, calls_sold=2 if opt else 0,
            assignments=rng.integers(0, 2, n_paths) if opt else 0, called_away=rng.integers(0, 2, n_paths) if opt else 0,
            trades_won=3 if opt else 0, trades_lost=1 if opt else 0, avg_win=150.0 if opt else np.nan,
            avg_loss=-400.0 if opt else np.nan, dominant_regime=rng.integers(0, 2, n_paths),
            stressed_share=rng.random(n_paths)))
        mos.append(monthly_frame(
            s, n_paths, n_months, premium=np.abs(rng.normal(500, 120, (n_paths, n_months))) if opt else 0.0,
            realised_pnl=rng.normal(250, 400, (n_paths, n_months)) if opt else 330.0, mtm_return=r,
            partial_last=partial_last))
    return make_result(pd.concat(pps, ignore_index=True), pd.concat(mos, ignore_index=True))


# --------------------------------------------------------------------------------------------
# hand-computed values


@pytest.fixture(scope="module")
def hand():
    """4 paths; wheel and buy_and_hold with chosen numbers, cash flat."""
    wheel = per_path_frame(
        "wheel", 4,
        final_equity=[110_000.0, 104_000.0, 97_000.0, 40_000.0],
        total_return=[0.10, 0.04, -0.03, -0.60],
        cagr=[0.21, 0.0816, -0.0591, -0.84],
        max_drawdown=[-0.05, -0.15, -0.25, -0.60],
        max_drawdown_days=[5, 20, 40, 100],
        ruined=[False, False, False, True],
        premium_collected=[4000.0, 3000.0, 5000.0, 2000.0],
        realised_pnl=[3000.0, 1000.0, -500.0, -40000.0],
        options_sold=[6, 5, 4, 3], puts_sold=[4, 3, 2, 3], calls_sold=[2, 2, 2, 0],
        assignments=[1, 1, 2, 1], called_away=[1, 1, 0, 0],
        trades_won=[5, 3, 2, 0], trades_lost=[0, 1, 2, 3], avg_win=[200.0, 100.0, 50.0, np.nan],
        avg_loss=[np.nan, -300.0, -200.0, -1000.0],
        withdrawn=[3000.0, 3000.0, 2500.0, 1000.0], shortfalls=[0, 0, 1, 4], first_shortfall_month=[-1, -1, 5, 2],
        dominant_regime=[0, 0, 1, 1], stressed_share=[0.1, 0.2, 0.6, 0.9],
    )
    bh = per_path_frame(
        "buy_and_hold", 4,
        final_equity=[108_000.0, 106_000.0, 90_000.0, 60_000.0],
        total_return=[0.08, 0.06, -0.10, -0.40],
        cagr=[0.1664, 0.1236, -0.19, -0.64],
        max_drawdown=[-0.08, -0.12, -0.30, -0.45],
        dominant_regime=[0, 0, 1, 1],
    )
    cash = per_path_frame("cash", 4, final_equity=102_000.0, total_return=0.02, cagr=0.0404, max_drawdown=0.0)
    # Wheel monthly: 3 full months + a partial one whose values must be ignored by income stats.
    prem = np.array([[100, 200, 300, 9999], [400, 500, 600, 9999], [0, 0, 900, 9999], [50, 50, 50, 9999]], float)
    real = np.array([[10, -20, 30, 9999], [40, 50, -60, 9999], [0, 0, 90, 9999], [-500, 5, 5, 9999]], float)
    mo = pd.concat([
        monthly_frame("wheel", 4, 4, premium=prem, realised_pnl=real, mtm_return=0.01, partial_last=True),
        monthly_frame("buy_and_hold", 4, 4, realised_pnl=20.0, mtm_return=0.01, partial_last=True),
        monthly_frame("cash", 4, 4, realised_pnl=330.0, mtm_return=0.0033, partial_last=True),
    ], ignore_index=True)
    res = make_result(pd.concat([wheel, bh, cash], ignore_index=True), mo)
    return res, metrics.summarize(res), prem[:, :3], real[:, :3]


def test_summary_is_strict_json_and_lists_every_strategy(hand):
    _, s, _, _ = hand
    json.dumps(s, allow_nan=False)
    assert s["strategies"] == ["wheel", "buy_and_hold", "cash"]
    assert set(s["metrics"]) == {"wheel", "buy_and_hold", "cash"}
    assert [(p["a"], p["b"]) for p in s["paired"]] == [
        ("wheel", "buy_and_hold"), ("wheel", "cash"), ("buy_and_hold", "cash")]


def test_drawdown_metrics_by_hand(hand):
    _, s, _, _ = hand
    w = s["metrics"]["wheel"]
    depth = w["max_drawdown_depth"]
    # depths 0.05, 0.15, 0.25, 0.60: linear quantiles at (n - 1) p.
    assert depth["quantiles"]["p50"] == pytest.approx(0.20)
    assert depth["quantiles"]["p95"] == pytest.approx(0.25 + 0.85 * 0.35)
    assert depth["mean"] == pytest.approx(0.2625)
    exceed = w["p_max_drawdown_above"]
    assert [exceed[k]["p"] for k in ("10pct", "20pct", "30pct", "50pct")] == [0.75, 0.5, 0.25, 0.25]
    assert exceed["20pct"]["se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert w["max_drawdown_days"]["mean"] == pytest.approx(41.25)
    assert w["ruin"]["p"] == 0.25 and w["ruin"]["ruin_level"] == 0.5


def test_cagr_and_return_by_hand(hand):
    _, s, _, _ = hand
    c = s["metrics"]["wheel"]["cagr"]
    x = [0.21, 0.0816, -0.0591, -0.84]
    mean = sum(x) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / 3)
    assert c["mean"] == pytest.approx(mean)
    assert c["se"] == pytest.approx(sd / 2)
    assert c["quantiles"]["p50"] == pytest.approx((0.0816 - 0.0591) / 2)
    assert s["metrics"]["cash"]["cagr"]["se"] == pytest.approx(0.0)


def test_var_cvar_by_hand():
    r = np.arange(1, 41, dtype=float) / 100 - 0.2  # -0.19 .. 0.20, 40 paths
    v95 = metrics.var_cvar(np.random.default_rng(1).permutation(r), 0.95)
    # k = ceil(40 * 0.05) = 2: VaR = -(2nd worst) = 0.18; CVaR = -mean(-0.19, -0.18) = 0.185
    assert v95["k"] == 2
    assert v95["var"] == pytest.approx(0.18)
    assert v95["cvar"] == pytest.approx(0.185)
    v99 = metrics.var_cvar(r, 0.99)
    assert v99["k"] == 1 and v99["var"] == pytest.approx(0.19) and v99["cvar"] == pytest.approx(0.19)
    # 4 paths at 95%: k = 1, the worst path
    assert metrics.var_cvar([0.10, 0.04, -0.03, -0.60], 0.95)["var"] == pytest.approx(0.60)


def test_var_in_summary_by_hand(hand):
    _, s, _, _ = hand
    v = s["metrics"]["buy_and_hold"]["var"]
    assert v["95"]["var"] == pytest.approx(0.40) and v["95"]["cvar"] == pytest.approx(0.40)


def test_paired_ci_by_hand():
    a = [0.10, 0.05, -0.02, 0.08]
    b = [0.07, 0.06, -0.05, 0.04]
    pp = pd.concat([per_path_frame("A", 4, cagr=a, final_equity=[5.0, 1.0, 2.0, 3.0], max_drawdown=[-0.1, -0.2, -0.3, -0.4]),
                    per_path_frame("B", 4, cagr=b, final_equity=[4.0, 2.0, 2.0, 1.0], max_drawdown=[-0.1, -0.1, -0.1, -0.1])])
    p = metrics.paired_comparison(pp, "A", "B")
    d = [0.03, -0.01, 0.03, 0.04]  # a - b by hand
    mean = 0.0225
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / 3) / 2  # = 0.0110868...
    assert se == pytest.approx(0.011086779)
    c = p["cagr"]
    assert c["mean_diff"] == pytest.approx(mean)
    assert c["se"] == pytest.approx(se)
    assert c["ci95"] == pytest.approx([mean - Z * se, mean + Z * se])
    va = np.var(a, ddof=1)
    vb = np.var(b, ddof=1)
    use = math.sqrt(va / 4 + vb / 4)
    assert c["unpaired_ci95"] == pytest.approx([mean - Z * use, mean + Z * use])
    dd = p["max_drawdown_depth"]  # depth_A - depth_B = 0, 0.1, 0.2, 0.3
    assert dd["mean_diff"] == pytest.approx(0.15)
    assert p["p_a_final_greater"]["p"] == 0.5  # 5>4, 1<2, 2=2, 3>1
    assert p["p_tie"] == 0.25


def test_paired_requires_common_paths():
    pp = pd.concat([per_path_frame("A", 3), per_path_frame("B", 2)])
    with pytest.raises(ValueError, match="same paths"):
        metrics.paired_comparison(pp, "A", "B")


def test_income_uses_full_months_with_clustered_se(hand):
    _, s, prem, real = hand
    inc = s["metrics"]["wheel"]["income"]
    assert inc["full_months_per_path"] == 3
    p = inc["premium"]
    assert p["n"] == 12
    assert p["mean"] == pytest.approx(prem.mean())
    assert p["se"] == pytest.approx(prem.mean(axis=1).std(ddof=1) / 2)
    for q in ("p1", "p5", "p25", "p50", "p75", "p95", "p99"):
        assert p["quantiles"][q] == pytest.approx(np.quantile(prem.ravel(), int(q[1:]) / 100))
    r = inc["realised_pnl"]
    assert r["share_negative"] == pytest.approx(3 / 12)
    assert r["quantiles"]["p50"] == pytest.approx(np.median(real))
    # annual yields: per path, mean over full months of income / month-start equity, times 12;
    # equity grows 1% a month from INITIAL, so month m starts at INITIAL * 1.01^m
    start = INITIAL * 1.01 ** np.arange(3)
    assert inc["annual_premium_yield"]["mean"] == pytest.approx(np.mean(12 * (prem / start).mean(axis=1)))
    assert inc["annual_realised_yield"]["mean"] == pytest.approx(np.mean(12 * (real / start).mean(axis=1)))
    assert inc["annual_premium_yield"]["se"] == pytest.approx(np.std(12 * (prem / start).mean(axis=1), ddof=1) / 2)


def test_trading_rates_by_hand(hand):
    _, s, _, _ = hand
    t = s["metrics"]["wheel"]["trading"]
    assert t["assignment_rate"]["rate"] == pytest.approx(5 / 12)  # assignments / puts sold
    assert t["called_away_rate"]["rate"] == pytest.approx(2 / 6)
    assert t["win_rate"]["rate"] == pytest.approx(10 / 16)
    assert t["avg_win"]["mean"] == pytest.approx((5 * 200 + 3 * 100 + 2 * 50) / 10)
    assert t["avg_loss"]["mean"] == pytest.approx((1 * -300 + 2 * -200 + 3 * -1000) / 6)
    assert t["avg_win"]["se"] > 0
    assert t["options_sold_per_year"]["mean"] == pytest.approx(4.5 / 0.5)
    assert s["metrics"]["buy_and_hold"]["trading"]["assignment_rate"]["rate"] is None


def test_withdrawals_by_hand(hand):
    _, s, _, _ = hand
    w = s["metrics"]["wheel"]["withdrawals"]
    assert w["withdrawn"]["mean"] == pytest.approx(2375.0)
    assert w["p_any_shortfall"]["p"] == 0.5
    assert w["first_shortfall_month"]["n"] == 2
    assert w["first_shortfall_month"]["quantiles"]["p50"] == pytest.approx(3.5)
    assert w["first_shortfall_by_year"] == {"1": 2}


def test_per_regime_conditions_on_dominant_regime(hand):
    _, s, prem, _ = hand
    pr = s["metrics"]["wheel"]["per_regime"]
    assert pr["conditioned_on"] == "dominant_regime"
    calm, stressed = pr["regimes"]["calm"], pr["regimes"]["stressed"]
    assert calm["n_paths"] == 2 and stressed["n_paths"] == 2
    assert calm["p_ruin"]["p"] == 0.0 and stressed["p_ruin"]["p"] == 0.5
    assert calm["monthly_premium"]["mean"] == pytest.approx(prem[:2].mean())
    assert stressed["monthly_premium"]["mean"] == pytest.approx(prem[2:].mean())
    assert stressed["max_drawdown_depth"]["p50"] == pytest.approx(0.425)
    assert pr["stressed_share"]["mean"] == pytest.approx(0.45)


def test_summary_table_rows(hand):
    _, s, _, real = hand
    t = metrics.summary_table(s)
    assert list(t["strategy"]) == ["wheel", "buy_and_hold", "cash"]
    w = t.iloc[0]
    assert w["income_p50"] == pytest.approx(np.median(real))
    assert w["p_beats_bh"] == 0.5  # 110>108, 104<106, 97>90, 40<60
    assert w["p_ruin"] == 0.25
    assert t.iloc[2]["p_beats_bh"] == pytest.approx(0.5)  # cash 102k beats bh on paths 2, 3
    text = metrics.format_table(s)
    assert len(text.splitlines()) == 4 and "wheel" in text
    assert len(metrics.format_paired_table(s).splitlines()) == 4


# --------------------------------------------------------------------------------------------
# order statistics and coverage


def test_quantile_ci_ranks_match_binomial_definition():
    for n in (20, 57, 400, 5000):
        for p in (0.05, 0.25, 0.5, 0.99):
            lo, hi = metrics.quantile_ci_ranks(n, p)
            F = lambda k: stats.binom.cdf(k, n, p)  # noqa: E731
            if lo is not None:
                assert F(lo - 1) <= 0.025 and F(lo) > 0.025
            else:
                assert F(0) > 0.025
            if hi is not None:
                assert F(hi - 1) >= 0.975 and F(hi - 2) < 0.975
            else:
                assert F(n - 1) < 0.975


def test_quantile_ci_covers_true_quantile():
    rng = np.random.default_rng(11)
    reps, n = 400, 60
    hits = {0.5: 0, 0.25: 0}
    truth = {0.5: 0.0, 0.25: -0.6744897501960817}
    for _ in range(reps):
        d = metrics.describe(rng.standard_normal(n))
        for p in hits:
            lo, hi = d["quantile_ci"][f"p{int(p * 100)}"]
            hits[p] += lo <= truth[p] <= hi
    for p, h in hits.items():
        assert h / reps >= 0.95 - 4 * math.sqrt(0.05 * 0.95 / reps)


def test_paired_ci_coverage_and_width_on_known_difference():
    """Common random numbers: cagr_A = X + 0.01 + e_A, cagr_B = X + e_B with a large common X.

    The true mean difference is 0.01; the paired 95% CI covers it at the stated rate and is far
    narrower than the unpaired CI. P(final_A > final_B) = Phi(0.01 / sqrt(2) / 0.01).
    """
    rng = np.random.default_rng(2024)
    reps, n = 300, 400
    cover = 0
    narrower = 0
    p_hat = []
    for _ in range(reps):
        x = rng.normal(0.05, 0.20, n)
        ca = x + 0.01 + rng.normal(0, 0.01, n)
        cb = x + rng.normal(0, 0.01, n)
        pp = pd.concat([per_path_frame("A", n, cagr=ca, final_equity=INITIAL * (1 + ca)),
                        per_path_frame("B", n, cagr=cb, final_equity=INITIAL * (1 + cb))])
        p = metrics.paired_comparison(pp, "A", "B")
        lo, hi = p["cagr"]["ci95"]
        cover += lo <= 0.01 <= hi
        ulo, uhi = p["cagr"]["unpaired_ci95"]
        narrower += (hi - lo) < 0.2 * (uhi - ulo)
        p_hat.append(p["p_a_final_greater"]["p"])
    rate = cover / reps
    se = math.sqrt(0.95 * 0.05 / reps)
    assert abs(rate - 0.95) <= 4 * se, rate
    assert narrower == reps
    true_p = 0.5 * (1 + math.erf((0.01 / (0.01 * math.sqrt(2))) / math.sqrt(2)))
    assert abs(np.mean(p_hat) - true_p) <= 4 * math.sqrt(true_p * (1 - true_p) / n / reps)


def test_synthetic_result_summarises_consistently():
    res = synthetic_result()
    s = metrics.summarize(res)
    json.dumps(s, allow_nan=False)
    pp = res.per_path
    w = pp[pp["strategy"] == "wheel"]
    m = s["metrics"]["wheel"]
    assert m["final_equity"]["mean"] == pytest.approx(w["final_equity"].mean())
    assert m["final_equity"]["quantiles"]["p5"] == pytest.approx(w["final_equity"].quantile(0.05))
    assert m["sharpe"]["n"] == len(w)
    assert s["metrics"]["cash"]["sharpe"]["n"] == 0 and s["metrics"]["cash"]["sharpe"]["mean"] is None
    for q, (lo, hi) in m["cagr"]["quantile_ci"].items():
        v = m["cagr"]["quantiles"][q]
        assert (lo is None or lo <= v) and (hi is None or v <= hi)


def test_per_regime_stressed_share_terciles_and_empty_regime(hand):
    res, _, _, _ = hand
    pp = res.per_path.copy()
    pp["dominant_regime"] = 0  # the stressed regime is never dominant: its entry keeps every key
    s = metrics.summarize(make_result(pp, res.monthly))
    pr = s["metrics"]["wheel"]["per_regime"]
    assert pr["regimes"]["stressed"]["n_paths"] == 0 and pr["regimes"]["stressed"]["p_ruin"]["p"] is None
    assert pr["regimes"]["calm"]["n_paths"] == 4
    t = pr["by_stressed_share"]  # shares 0.1, 0.2, 0.6, 0.9: terciles at 0.2 and 0.6
    assert t["low"]["stressed_share"][1] == pytest.approx(0.2) and t["mid"]["stressed_share"][1] == pytest.approx(0.6)
    assert [t[k]["n_paths"] for k in ("low", "mid", "high")] == [2, 1, 1]
    assert t["high"]["p_ruin"]["p"] == 1.0  # the ruined path has stressed_share 0.9


def test_row_order_and_path_numbers_do_not_matter(hand):
    res, s, _, _ = hand
    pp = res.per_path.sample(frac=1.0, random_state=3).copy()
    mo = res.monthly.sample(frac=1.0, random_state=4).copy()
    pp["path"] += 1000
    mo["path"] += 1000
    s2 = metrics.summarize(make_result(pp, mo, names=res.strategies))
    for name in ("wheel", "buy_and_hold", "cash"):
        a, b = s["metrics"][name], s2["metrics"][name]
        assert a["income"]["premium"]["se"] == pytest.approx(b["income"]["premium"]["se"])
        assert a["per_regime"]["regimes"]["calm"]["monthly_premium"] == pytest.approx(
            b["per_regime"]["regimes"]["calm"]["monthly_premium"])
        assert a["cagr"] == b["cagr"]
    assert s["paired"] == s2["paired"]


def test_every_mean_carries_its_standard_error(hand):
    _, s, _, _ = hand
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            if "mean" in node and "se" not in node:
                missing.append(where)
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(s, "summary")
    assert not missing, missing
