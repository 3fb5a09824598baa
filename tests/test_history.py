"""Price files and historical replay (issue 14).

* Bad files (missing column, negative price, unsorted dates, text in a number column, gaps,
  too few rows) give one `HistoryError` line naming the file, row, column and value; at the CLI
  exit 2 with one stderr line and no traceback.
* IV percent/decimal detection.
* Replay on a hand-made 2-year price file: the trade log a hand calculation gives (ATM monthly
  cash-settled puts, r = 0, constant IV, Black-Scholes by hand with math.erf), dates in the log,
  calendar months in the monthly table.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mcsim
from mcsim.backtest import calendar_months
from mcsim.history import HistoryError, load_history, trailing_realised_vol

N_ROWS = 505   # two years and a day: 504 steps


def _frame(n=N_ROWS, seed=0, iv=None):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2019-01-02", periods=n)
    spy = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    df = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "SPY": spy,
                       "QQQ": 200.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))})
    if iv is not None:
        df["SPY_iv"] = iv
    return df


def _csv(tmp_path, df, name="prices.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


# --------------------------------------------------------------------------------------------
# validation


def test_good_file_csv_and_parquet(tmp_path):
    df = _frame(iv=20.0)
    h = load_history(_csv(tmp_path, df), ["SPY", "QQQ"])
    assert h.n_rows == N_ROWS and h.underlyings == ("SPY", "QQQ")
    assert h.iv_unit == ("percent", None)
    assert np.allclose(h.iv[:, 0], 0.20) and np.isnan(h.iv[:, 1]).all()
    assert np.allclose(h.prices[:, 0], df["SPY"].to_numpy())
    p = tmp_path / "prices.parquet"
    df.to_parquet(p)
    h2 = load_history(p)
    assert h2.underlyings == ("SPY", "QQQ") and np.array_equal(h2.prices, h.prices)
    assert np.array_equal(h2.dates, h.dates)


def test_iv_decimal_detected_and_second_file(tmp_path):
    h = load_history(_csv(tmp_path, _frame(iv=0.18)), ["SPY"])
    assert h.iv_unit == ("decimal",) and np.allclose(h.iv[:, 0], 0.18)
    df = _frame()
    vix = pd.DataFrame({"date": df["date"][5:], "VIX": 25.0})
    h = load_history(_csv(tmp_path, df), ["SPY"], iv_path=_csv(tmp_path, vix, "vix.csv"),
                     iv_columns={"SPY": "VIX"})
    assert h.iv_unit == ("percent",)
    assert np.isnan(h.iv[:5, 0]).all() and np.allclose(h.iv[5:, 0], 0.25)


def _bad(tmp_path, df, names=("SPY",)):
    with pytest.raises(HistoryError) as e:
        load_history(_csv(tmp_path, df, "bad.csv"), list(names))
    msg = str(e.value)
    assert "\n" not in msg and '"' in msg and "bad.csv" in msg
    return msg


def test_missing_column(tmp_path):
    msg = _bad(tmp_path, _frame(), ("SPY", "IWM"))
    assert 'missing column "IWM"' in msg and "row 1" in msg


def test_negative_price(tmp_path):
    df = _frame()
    df.loc[7, "QQQ"] = -5.0
    msg = _bad(tmp_path, df, ("SPY", "QQQ"))
    assert 'row 9, column "QQQ": -5.0 is not allowed (must be a price > 0)' in msg


def test_unsorted_dates(tmp_path):
    df = _frame()
    df.loc[[10, 11], "date"] = df.loc[[11, 10], "date"].to_numpy()
    msg = _bad(tmp_path, df)
    assert 'row 13, column "date"' in msg and "must be a date after" in msg


def test_text_in_number_column(tmp_path):
    df = _frame()
    df["SPY"] = df["SPY"].astype(object)
    df.loc[3, "SPY"] = "n/a"
    msg = _bad(tmp_path, df)
    assert 'row 5, column "SPY": "n/a" is not allowed (must be a number)' in msg


def test_gap_and_short_and_bad_date(tmp_path):
    df = _frame().drop(index=range(100, 112)).reset_index(drop=True)
    msg = _bad(tmp_path, df)
    assert "row 102" in msg and "at most 10 calendar days" in msg
    assert "at least 250 rows" in _bad(tmp_path, _frame(n=120))
    df = _frame()
    df.loc[4, "date"] = "04/01/2019"
    assert 'row 6, column "date": "04/01/2019" is not allowed (must be an ISO date YYYY-MM-DD)' in _bad(tmp_path, df)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, N_ROWS - 1),
       value=st.one_of(st.floats(max_value=0.0, allow_nan=False), st.text(st.characters(blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                                               blacklist_categories=("Cs",)), min_size=1, max_size=8),
                       st.just(""), st.sampled_from(["inf", "-1e9", "nan?", "1,5"])))
def test_any_bad_cell_is_named(tmp_path, row, value):
    """Whatever bad value lands in a price cell, the error names its row and column."""
    if isinstance(value, str):
        try:
            ok = float(value) > 0 and math.isfinite(float(value))
        except ValueError:
            ok = False
        if ok:
            return
    df = _frame()
    df["SPY"] = df["SPY"].astype(object)
    df.loc[row, "SPY"] = value
    p = tmp_path / "cell.csv"
    df.to_csv(p, index=False)
    with pytest.raises(HistoryError) as e:
        load_history(p, ["SPY"])
    msg = str(e.value)
    assert "\n" not in msg and f"row {row + 2}" in msg and 'column "SPY"' in msg


SCENARIO = """\
title = "replay"
[run]
initial_equity = 100000.0
risk_free_rate = 0.0
[market]
source = "history"
history = "{file}"
[[underlyings]]
name = "SPY"
strike_step = 1.0
expiry_every_days = 21
[underlyings.implied_vol]
floor = 0.01
[[strategies]]
name = "pw"
kind = "put_write"
entry_every_days = 21
[strategies.put]
otm_pct = 0.0
dte = 30
[strategies.manage]
early_assignment = false
"""


# warnings Python's default filters print on a terminal (a subprocess would show them on stderr)
_SHOWN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def test_cli_bad_files_exit_2(tmp_path, capsys, monkeypatch):
    """The four bad files of the issue, through `mcsim validate`, `mcsim run` and `mcsim calibrate`:
    exit 2, one line naming the file, no traceback, nothing written. In process (`cli.main`, the
    console script's entry point), every command on every file; one case also as a real
    `python -m mcsim` process, end to end."""
    from mcsim import cli

    cases = {}
    df = _frame()
    cases["missing"] = df.drop(columns=["SPY"])
    d = _frame()
    d.loc[20, "SPY"] = -1.0
    cases["negative"] = d
    d = _frame()
    d.loc[[30, 31], "date"] = d.loc[[31, 30], "date"].to_numpy()
    cases["unsorted"] = d
    d = _frame()
    d["SPY"] = d["SPY"].astype(object)
    d.loc[40, "SPY"] = "abc"
    cases["text"] = d
    monkeypatch.chdir(tmp_path)
    commands = []
    for name, frame in cases.items():
        _csv(tmp_path, frame, f"{name}.csv")
        sc = tmp_path / f"{name}.toml"
        sc.write_text(SCENARIO.format(file=f"{name}.csv"))
        for cmd in (["validate", str(sc)], ["run", str(sc), "--out", str(tmp_path / f"out-{name}")],
                    ["calibrate", str(tmp_path / f"{name}.csv"), "--underlyings", "SPY",
                     "--out", str(tmp_path / f"{name}-cal.toml")]):
            commands.append((name, cmd))
    # the console script end to end, on one of them (started first, checked last)
    name_sub, cmd_sub = commands[-2]  # `mcsim run` on the text file
    proc = subprocess.Popen([sys.executable, "-m", "mcsim", *cmd_sub], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for name, cmd in commands:
        with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as e:
            warnings.simplefilter("always")
            cli.main(cmd)
        err = capsys.readouterr().err
        assert e.value.code == 2, (name, cmd, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (cmd, err)
        assert f"{name}.csv" in lines[0], (cmd, err)
        shown = [str(w.message) for w in caught if not issubclass(w.category, _SHOWN)]
        assert not shown, (cmd, shown)  # a warning would be a second line on the terminal
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, (name_sub, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and f"{name_sub}.csv" in lines[0], err
    assert not any((tmp_path / f"out-{n}").exists() for n in cases)
    assert not any((tmp_path / f"{n}-cal.toml").exists() for n in cases)


# --------------------------------------------------------------------------------------------
# replay


def _bs_put(s, k, tau, vol):
    """Black-Scholes put at r = q = 0, written out by hand."""
    ncdf = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))  # noqa: E731
    d1 = (math.log(s / k) + 0.5 * vol * vol * tau) / (vol * math.sqrt(tau))
    d2 = d1 - vol * math.sqrt(tau)
    return k * ncdf(-d2) - s * ncdf(-d1)


def _replay_file(tmp_path):
    # two years of closes: a sawtooth that falls 4% in some months (puts end in the money) and
    # rises in others (they expire worthless); IV 20 (percent) on every row
    n = N_ROWS
    t = np.arange(n)
    month = t // 21
    within = t % 21
    drift = np.where(month % 3 == 1, -0.002, 0.001)
    logp = np.log(100.0) + np.cumsum(np.where(t == 0, 0.0, drift + 0.0005 * np.sin(within)))
    df = pd.DataFrame({"date": pd.bdate_range("2019-01-02", periods=n).strftime("%Y-%m-%d"),
                       "SPY": np.round(np.exp(logp), 4), "SPY_iv": 20.0})
    _csv(tmp_path, df, "two_years.csv")
    sc = tmp_path / "replay.toml"
    sc.write_text(SCENARIO.format(file="two_years.csv"))
    return df, sc


def test_replay_two_years_by_hand(tmp_path):
    df, sc_path = _replay_file(tmp_path)
    scenario = mcsim.load_scenario(sc_path)
    log = mcsim.replay(scenario, 0, "pw")
    s = df["SPY"].to_numpy()
    dates = df["date"].tolist()
    # the hand calculation: every 21 steps sell floor(equity / (K 100)) ATM puts (K = floor(S)),
    # expiring 21 steps later, settled in cash at intrinsic; r = 0, no costs, IV 0.20
    cash = 100000.0
    rows = []
    for t in range(0, 504, 21):
        k = math.floor(s[t])
        c = math.floor(cash / (k * 100.0))
        prem = _bs_put(s[t], k, 21 / 252, 0.20)
        cash += prem * 100.0 * c
        rows.append(("sell_put", t, k, c, prem))
        e = t + 21
        pay = max(k - s[e], 0.0)
        cash -= pay * 100.0 * c
        rows.append(("assigned" if pay > 0 else "expire_worthless", e, k, c, pay))
    body = log[log["action"] != "end"]
    got = list(zip(body["action"], body["step"], body["strike"], body["contracts"], body["price"]))
    # the kernel logs an expiry before the sale of the same close
    want = sorted(rows, key=lambda x: (x[1], x[0] == "sell_put"))
    assert len(got) == len(want) == 48
    for g, w in zip(got, want):
        assert g[0] == w[0] and g[1] == w[1] and g[2] == w[2] and g[3] == w[3], (g, w)
        assert g[4] == pytest.approx(w[4], rel=1e-9, abs=1e-9)
    assert any(r[0] == "assigned" for r in rows) and any(r[0] == "expire_worthless" for r in rows)
    end = log[log["action"] == "end"].iloc[0]
    assert end["equity"] == pytest.approx(cash, rel=1e-9)
    # dates: every row's date is the file's date of its step; expiry dates too
    assert list(log["date"]) == [dates[t] for t in log["step"]]
    sells = log[log["action"] == "sell_put"]
    assert list(sells["expiry_date"]) == [dates[e] for e in sells["expiry"]]
    # simulate on the same scenario: one path, final equity = the hand figure, calendar months
    res = mcsim.simulate(scenario)
    pp = res.per_path.set_index("strategy")
    assert res.n_paths == 1 and pp.loc["pw", "final_equity"] == pytest.approx(cash, rel=1e-9)
    mo = res.monthly[res.monthly["strategy"] == "pw"]
    assert list(mo["calendar_month"]) == sorted(set(d[:7] for d in dates[1:]))
    assert mo["premium"].sum() == pytest.approx(sum(r[4] * 100 * r[3] for r in rows if r[0] == "sell_put"), rel=1e-9)
    assert mo["equity"].iloc[-1] == pytest.approx(cash, rel=1e-9)
    # the months are chained: each month's mtm from the previous month's end equity
    eq = np.concatenate([[100000.0], mo["equity"].to_numpy()[:-1]])
    assert np.allclose(mo["mtm_return"].to_numpy(), mo["equity"].to_numpy() / eq - 1.0)
    bh = res.per_path.set_index("strategy").loc["buy_and_hold", "final_equity"]
    assert bh == pytest.approx(100000.0 * s[-1] / s[0], rel=1e-9)


def test_replay_without_iv_warms_up_21_days(tmp_path):
    df = _frame()
    _csv(tmp_path, df)
    sc = tmp_path / "s.toml"
    sc.write_text(SCENARIO.format(file="prices.csv").replace("floor = 0.01", "floor = 0.01\npremium = 0.03"))
    scenario = mcsim.load_scenario(sc)
    m = mcsim.simulate_market(scenario, 1, 0)
    s = df["SPY"].to_numpy()
    assert m.n_steps == N_ROWS - 1 - 21
    assert np.array_equal(m.spot[0, :, 0], s[21:])
    rv = trailing_realised_vol(np.diff(np.log(s)), 252)
    assert np.allclose(m.atm_iv[0, :, 0], rv[20:] + 0.03, rtol=1e-12)
    log = mcsim.replay(scenario, 0, "pw")
    assert log["date"].iloc[0] == df["date"].iloc[21]


def test_calendar_months_partial_rule():
    dates = pd.bdate_range("2019-01-15", "2019-06-14").to_numpy().astype("datetime64[D]")
    idx, labels, partial = calendar_months(dates)
    assert labels == ["2019-01", "2019-02", "2019-03", "2019-04", "2019-05", "2019-06"]
    assert list(partial) == [True, False, False, False, False, True]
    full = pd.bdate_range("2019-01-02", "2019-05-31").to_numpy().astype("datetime64[D]")
    assert not calendar_months(full)[2].any()


def test_market_table_errors(tmp_path):
    _csv(tmp_path, _frame())
    base = SCENARIO.format(file="prices.csv")
    cases = {
        'source = "history"': ('source = "histroy"', 'market.source: "histroy" is not allowed'),
        'history = "prices.csv"': ('history = "nope.csv"', '"nope.csv": (no such file)'),
    }
    for old, (new, want) in cases.items():
        p = tmp_path / "e.toml"
        p.write_text(base.replace(old, new))
        with pytest.raises(mcsim.ScenarioError) as e:
            mcsim.load_scenario(p)
        assert want in str(e.value)
    p = tmp_path / "w.toml"
    p.write_text(base.replace("risk_free_rate = 0.0", "risk_free_rate = 0.0\nmonthly_withdrawal = 100.0"))
    with pytest.raises(mcsim.ScenarioError, match="run.monthly_withdrawal"):
        mcsim.load_scenario(p)
    p.write_text(base.replace('source = "history"\n', 'source = "history"\nstart = "2020-06-01"\n'))
    with pytest.raises(mcsim.ScenarioError, match="at least 250 rows"):
        mcsim.load_scenario(p)
    p.write_text(textwrap.dedent(base).replace('source = "history"\nhistory = "prices.csv"\n', 'start = "2020-01-01"\n'))
    with pytest.raises(mcsim.ScenarioError, match="market.start"):
        mcsim.load_scenario(p)


def test_cli_replay_history(tmp_path):
    _, sc = _replay_file(tmp_path)
    from mcsim import cli

    out = tmp_path / "r"
    assert cli.main(["replay", str(sc), "--strategy", "pw", "--out", str(out)]) == 0
    trades = pd.read_csv(out / "trades.csv")
    assert trades["date"].iloc[0] == "2019-01-02" and "expiry_date" in trades.columns
    with pytest.raises(SystemExit) as e:
        cli.main(["replay", str(sc), "--strategy", "pw", "--path", "3", "--out", str(tmp_path / "r2")])
    assert e.value.code == 2
    assert Path(out).is_dir()
