"""Regenerate scenarios/spy_like_calibrated.toml from the S&P 500 history that `arch` ships.

    pip install -e ".[calibrate,dev]"        # statsmodels, scipy, arch
    python scenarios/make_spy_like_calibrated.py

`arch.data.sp500` (S&P 500 index daily prices, 1999-01-04 to 2018-12-31, "Adj Close" used) and
`arch.data.vix` (VIX daily closes, 2014-01-03 to 2019-01-03, in percent) are read from the arch
wheel (offline). They are written to a temporary folder as the CSV files `mcsim calibrate`
reads, calibrated with two Markov regimes fitted on the index (Merton fit as a comment) and the
VIX as the index's IV column (the IV premium uses the 2014-2018 overlap), and the result is
written over scenarios/spy_like_calibrated.toml. No market data is kept in the repository.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "spy_like_calibrated.toml"
SOURCE = ("arch.data.sp500 (S&P 500 index, Adj Close) with arch.data.vix (VIX, percent) as its IV, "
          "from the arch package")

PREAMBLE = ("# What it shows: a market calibrated on the S&P 500, 1999-2018 (two Markov regimes, IV premium "
            "from VIX), for the rules to meet a history-like market")


def main() -> int:
    try:
        import arch.data.sp500
        import arch.data.vix
    except ImportError:
        sys.stderr.write('make_spy_like_calibrated: needs the dev extra: pip install -e ".[calibrate,dev]"\n')
        return 2
    import mcsim
    from mcsim import io
    from mcsim.calibrate import calibrate
    from mcsim.calibrate_toml import OWNER_MARK, scenario_text
    from mcsim.history import load_history

    sp = arch.data.sp500.load()["Adj Close"]
    vix = arch.data.vix.load()["vix"]
    with tempfile.TemporaryDirectory() as tmp:
        prices = Path(tmp) / "sp500.csv"
        ivf = Path(tmp) / "vix.csv"
        sp.rename("SPY").rename_axis("date").reset_index().assign(
            date=lambda d: d["date"].dt.strftime("%Y-%m-%d")).to_csv(prices, index=False)
        vix.rename("VIX").rename_axis("date").reset_index().assign(
            date=lambda d: d["date"].dt.strftime("%Y-%m-%d")).to_csv(ivf, index=False)
        h = load_history(prices, ["SPY"], iv_path=ivf, iv_columns={"SPY": "VIX"})
        cal = calibrate(h, regimes=2, regime_from="SPY", model="merton")
        text = scenario_text(cal, source=SOURCE, command="python scenarios/make_spy_like_calibrated.py",
                             version=mcsim.__version__, preamble=PREAMBLE)
    text = text.replace(
        "title = ", "# IV premium: VIX minus the next 21 days' realised vol on the 2014-01-03 to 2018-12-31 overlap\n"
        "# the index level is the spot: use fractional contracts (one contract secures ~$250,000)\n"
        "title = ", 1)
    lines = text.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("title = "))
    lines[at] = ('title = "SPY-like market calibrated on the S&P 500 1999-2018 (2 Markov regimes, '
                 'IV premium from VIX 2014-2018): 30-delta wheel"')
    text = "\n".join(lines) + "\n"
    io.write_text_file(OUT, text, force=True, owner_mark=OWNER_MARK)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
