"""Every shipped scenario loads, runs as it is, and every option strategy in it trades."""

from pathlib import Path

import numpy as np
import pytest

import mcsim
from mcsim.kinds import KINDS

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.toml"))
N_PATHS = 256


def test_the_library_is_complete():
    names = {p.stem for p in SCENARIOS}
    assert {"spy_wheel", "low_vol", "high_vol", "crash", "sizing_tail_risk", "diversified",
            "put_index", "income_withdrawals", "buy_write"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_runs_and_every_option_strategy_trades(path):
    scenario = mcsim.load_scenario(path)
    first = path.read_text().lstrip().splitlines()[0]
    assert first.startswith("# What it shows:"), "each shipped scenario says what it shows"
    assert scenario.run.paths >= 20000 and scenario.title
    result = mcsim.simulate(scenario, n_paths=N_PATHS)
    pp = result.per_path
    option_kinds = {k for k, v in KINDS.items() if v.has_options}
    for rules in scenario.strategies:
        rows = pp[pp.strategy == rules.name]
        assert len(rows) == N_PATHS
        assert np.isfinite(rows.final_equity).all()
        if rules.kind in option_kinds:
            share_trading = (rows.options_sold > 0).mean()
            assert share_trading > 0.9, f"{rules.name}: options sold on {share_trading:.0%} of paths"
    for baseline in mcsim.scenario.BASELINE_NAMES:
        assert (pp.strategy == baseline).sum() == N_PATHS


def test_spy_wheel_has_the_named_strategies():
    s = mcsim.load_scenario(Path(SCENARIOS[0]).parent / "spy_wheel.toml")
    assert [x.name for x in s.strategies] == ["wheel_30d", "put_spread_45d"]
    assert s.run.paths >= 20000 and s.run.horizon_years >= 5
    assert s.strategy("wheel_30d").put.delta == 0.30
    assert s.strategy("put_spread_45d").put.delta == 0.16
    assert s.strategy("put_spread_45d").put.dte == 45
    assert s.strategy("put_spread_45d").sizing.max_open > 1


def test_sizing_scenario_trades_at_one_percent():
    s = mcsim.load_scenario(Path(SCENARIOS[0]).parent / "sizing_tail_risk.toml")
    fractions = sorted(x.sizing.position_fraction for x in s.strategies)
    assert fractions == [0.01, 0.02, 0.03, 0.10, 1.0]
    u = s.underlyings[0]
    # 1% of initial equity secures at least one contract at today's spot
    assert 0.01 * s.run.initial_equity >= u.spot * 100
