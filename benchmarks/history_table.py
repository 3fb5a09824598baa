"""Model vs published history: the shipped put writing (Cboe PUT), buy-write (Cboe BXM),
S&P 500 and VIX figures, side by side (the README table of "Shipped scenarios vs history").

    python benchmarks/history_table.py [--paths 500] [--seed 2026] [--years 30] [--set KEY=VALUE ...]
                                       [--markdown]

Runs the SHIPPED scenario files, as `mcsim run` would with `--set run.horizon_years=30`:
`scenarios/put_index.toml` (its `put_write_atm`, the Cboe PUT rule, and `buy_and_hold`, the
S&P 500 row) and `scenarios/buy_write.toml` (its `buy_write_atm`, the Cboe BXM rule with
`sizing.rebalance`; both files share one market). `--set` adds overrides to both (to try a
recalibration before editing the files). Prints, per row, the model's median [p5, p95] across
paths beside the published figure, and where the published figure falls among the paths (its
percentile): one history is one path, so it should sit inside the band, not at the median.

Published figures:
* Cboe PUT vs S&P 500 (total return), June 1986 - Dec 2018 (Bondarenko 2019, "Historical
  Performance of Put-Writing Strategies", Cboe): CAGR 9.54% vs 9.80%, standard deviation 9.95%
  vs 14.93%, Sharpe 0.65 vs 0.49, max drawdown -32.7% vs -50.9%, gross premium about 22% a year.
* Cboe BXM, June 1986 - Dec 2011 (as quoted in issue 12): 9.1% a year at 11.6% volatility,
  against the S&P 500's 9.0% at 16.1%.
* VIX averaged 19.3% against 15.1% realised S&P 500 volatility, 1990-2018 (issue 12; about 4
  vol points).

Model definitions: CAGR, annualised volatility of monthly mark-to-market returns, Sharpe (monthly
excess over the scenario's risk-free rate, x sqrt(12)) and max drawdown (daily equity) are
mcsim's per-path metrics; gross premium is the mean over full months of the month's premium
over its starting equity, x 12; the vol ratios are per path; IV - RV is the path's mean 30-day
ATM IV minus its realised vol (std of daily log returns x sqrt(252)), and VIX-style the same for
the 30-day variance-swap rate of the model's own smile (`stylised_facts.vix_style`): VIX is that
rate, not an ATM vol, and with the shipped skew of 0.30 it sits about 4 vol points above ATM IV.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mcsim  # noqa: E402
from mcsim.market import simulate_market  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from stylised_facts import VIX_STRIKES, vix_style  # noqa: E402

PUT_FILE = ROOT / "scenarios" / "put_index.toml"
BXM_FILE = ROOT / "scenarios" / "buy_write.toml"

# (row label, published value, unit) ; unit "%" = a fraction shown in percent, "x" = a ratio
PUBLISHED = {
    ("S&P 500", "cagr"): 0.0980, ("S&P 500", "ann_vol"): 0.1493, ("S&P 500", "sharpe"): 0.49,
    ("S&P 500", "max_drawdown"): -0.509,
    ("PUT", "cagr"): 0.0954, ("PUT", "ann_vol"): 0.0995, ("PUT", "sharpe"): 0.65,
    ("PUT", "max_drawdown"): -0.327, ("PUT", "gross_premium"): 0.22,
    ("PUT", "vol_ratio"): 0.0995 / 0.1493,
    ("BXM", "cagr"): 0.091, ("BXM", "ann_vol"): 0.116, ("BXM", "vol_ratio"): 0.116 / 0.161,
    ("VIX", "iv_minus_rv"): 0.193 - 0.151, ("VIX", "vix_minus_rv"): 0.193 - 0.151,
}
SOURCES = {
    "S&P 500": "S&P 500 total return, Jun 1986 - Dec 2018 (Bondarenko 2019)",
    "PUT": "Cboe PUT, Jun 1986 - Dec 2018 (Bondarenko 2019)",
    "BXM": "Cboe BXM, Jun 1986 - Dec 2011 (vs S&P 500 9.0% at 16.1%)",
    "VIX": "VIX 19.3% vs 15.1% realised, 1990-2018",
}
LABELS = {"cagr": "CAGR", "ann_vol": "volatility", "sharpe": "Sharpe", "max_drawdown": "max drawdown",
          "gross_premium": "gross premium / year", "vol_ratio": "volatility / S&P 500's",
          "iv_minus_rv": "30-day ATM IV minus realised vol",
          "vix_minus_rv": "VIX-style (the smile's 30-day variance swap) minus realised vol"}


def _gross_premium(result, name) -> np.ndarray:
    mo = result.monthly[(result.monthly.strategy == name) & ~result.monthly.partial]
    eq0 = mo.equity / (1.0 + mo.mtm_return)  # the month's starting equity (no withdrawals here)
    return ((mo.premium / eq0).groupby(mo.path).mean() * 12.0).to_numpy()


def _per_path(result, name):
    pp = result.per_path
    return pp[pp.strategy == name].sort_values("path").reset_index(drop=True)


def iv_gaps(scenario, n_paths, seed) -> tuple[np.ndarray, np.ndarray]:
    """Per path: mean 30-day ATM IV minus realised vol, and the same for the VIX-style rate."""
    m = simulate_market(scenario, n_paths, seed)
    u = scenario.underlyings[0]
    x = np.diff(np.log(m.spot[:, :, 0]), axis=1)
    rv = x.std(axis=1, ddof=1) * np.sqrt(m.steps_per_year)
    atm = m.atm_iv[:, 1:, 0]
    vix = vix_style(atm, float(np.mean(u.implied_vol.skew)), float(u.implied_vol.floor),
                    scenario.run.risk_free_rate, float(u.dividend_yield))
    return atm.mean(axis=1) - rv, vix.mean(axis=1) - rv


def compute(paths: int, seed: int, years: float, extra: list[str]) -> dict:
    common = [f"run.horizon_years={years}", f"run.paths={paths}", f"run.seed={seed}", *extra]
    t0 = time.time()
    sc_put = mcsim.load_scenario(PUT_FILE, common)
    r_put = mcsim.simulate(sc_put)
    sc_bxm = mcsim.load_scenario(BXM_FILE, common)
    r_bxm = mcsim.simulate(sc_bxm)
    bh, pw, bw = _per_path(r_put, "buy_and_hold"), _per_path(r_put, "put_write_atm"), _per_path(r_bxm, "buy_write_atm")
    bh2 = _per_path(r_bxm, "buy_and_hold")
    samples = {}
    for row, d in (("S&P 500", bh), ("PUT", pw), ("BXM", bw)):
        for k in ("cagr", "ann_vol", "sharpe", "max_drawdown"):
            samples[(row, k)] = d[k].to_numpy()
        if row == "PUT":
            samples[("PUT", "gross_premium")] = _gross_premium(r_put, "put_write_atm")
            samples[("PUT", "vol_ratio")] = (pw.ann_vol / bh.ann_vol).to_numpy()
    samples[("BXM", "gross_premium")] = _gross_premium(r_bxm, "buy_write_atm")
    samples[("BXM", "vol_ratio")] = (bw.ann_vol / bh2.ann_vol).to_numpy()
    samples[("VIX", "iv_minus_rv")], samples[("VIX", "vix_minus_rv")] = iv_gaps(sc_put, paths, seed)
    same_market = bool(np.allclose(bh.final_equity / sc_put.run.initial_equity,
                                   bh2.final_equity / sc_bxm.run.initial_equity, rtol=1e-9))
    return {"samples": samples, "seconds": time.time() - t0, "same_market": same_market,
            "paths": paths, "seed": seed, "years": years, "extra": extra,
            "rate": sc_put.run.risk_free_rate}


def _fmt(v, key) -> str:
    if key in ("sharpe", "vol_ratio"):
        return f"{v:.2f}"
    return f"{100 * v:.1f}%"


def table(res: dict, markdown: bool) -> str:
    s = res["samples"]
    lines = []
    if markdown:
        lines.append("| | model: median [p5, p95] across paths | published | share of paths below the published figure |")
        lines.append("|---|---|---|---|")
    for (row, key), v in s.items():
        v = v[np.isfinite(v)]
        p5, p50, p95 = np.percentile(v, [5, 50, 95])
        pub = PUBLISHED.get((row, key))
        name = f"{row} {LABELS[key]}" if row != "VIX" else LABELS[key]
        model = f"{_fmt(p50, key)} [{_fmt(p5, key)}, {_fmt(p95, key)}]"
        pub_s = _fmt(pub, key) if pub is not None else "n/a"
        rank = f"{100 * np.mean(v < pub):.0f}%" if pub is not None else ""
        if markdown:
            lines.append(f"| {name} | {model} | {pub_s} | {rank} |")
        else:
            lines.append(f"{name:42s} {model:28s} {pub_s:>8s} {rank:>4s}")
    today = dt.date.today().isoformat()
    note = (f"{res['paths']} paths x {res['years']:g} years, seed {res['seed']}, risk-free rate "
            f"{res['rate']:g}, run {today} ({res['seconds']:.0f} s) by `python benchmarks/history_table.py"
            f" --paths {res['paths']} --seed {res['seed']}`" + (f" with {res['extra']}" if res["extra"] else "")
            + f"; files: scenarios/put_index.toml (S&P 500 = its buy_and_hold, PUT, IV - RV), "
              f"scenarios/buy_write.toml (BXM){'' if res['same_market'] else ' (NOT the same market!)'}; "
              f"VIX-style: strikes {VIX_STRIKES[0]:.0%}-{VIX_STRIKES[1]:.0%} of spot (benchmarks/stylised_facts.py)")
    lines.append("")
    lines.append(note)
    lines.append("Sources: " + "; ".join(f"{k}: {v}" for k, v in SOURCES.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--years", type=float, default=30.0)
    ap.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    res = compute(args.paths, args.seed, args.years, args.extra)
    print(table(res, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
