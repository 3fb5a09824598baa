"""Scenario files: loading, overrides and every validation rule (one-line messages)."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mcsim
from mcsim import ScenarioError, load_scenario

BASE = """
title = "test"
[run]
horizon_years = 1.0
paths = 100
seed = 7
[regimes]
names = ["calm", "normal", "stressed"]
mean_duration_days = [120.0, 60.0, 15.0]
exit_probabilities = [[0.0, 0.8, 0.2], [0.7, 0.0, 0.3], [0.1, 0.9, 0.0]]
[[underlyings]]
name = "SPY"
spot = 450.0
dividend_yield = 0.013
expected_return = [0.12, 0.08, -0.20]
volatility = [0.10, 0.16, 0.32]
jump_intensity = [0.0, 0.5, 4.0]
jump_mean = -0.05
jump_std = 0.07
[underlyings.implied_vol]
premium = [0.02, 0.03, 0.06]
skew = [0.08, 0.10, 0.18]
floor = 0.05
[[underlyings]]
name = "QQQ"
spot = 380.0
volatility = 0.2
[[shocks]]
day = 60
underlyings = ["SPY"]
log_return = -0.20
iv_add = 0.15
[correlation]
matrix = [[1.0, 0.7], [0.7, 1.0]]
[[strategies]]
name = "wheel_30d"
kind = "wheel"
underlyings = ["SPY"]
[strategies.put]
delta = 0.30
dte = 35
[strategies.call]
delta = 0.30
dte = 35
[strategies.manage]
profit_take = 0.5
[[strategies]]
name = "spread"
kind = "bull_put_spread"
width = 5.0
[strategies.short_put]
delta = 0.16
dte = 45
[costs]
commission_per_contract = 0.65
"""


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("scenario") / "base.toml"
    p.write_text(BASE)
    return p


def load(path, *overrides):
    return load_scenario(path, overrides)


def test_base_loads(base_file):
    s = load(base_file)
    assert s.title == "test"
    assert s.n_steps == 252
    assert s.regimes.names == ("calm", "normal", "stressed")
    assert s.underlyings[0].jump_mean == (-0.05, -0.05, -0.05)
    assert s.underlyings[1].expected_return == (0.07, 0.07, 0.07)
    assert s.strategies[0].put.delta == 0.30
    assert s.strategies[1].width == 5.0
    assert s.costs.commission_per_contract == 0.65
    with pytest.raises(Exception):
        s.run.paths = 3  # frozen


def test_transition_from_durations(base_file):
    s = load(base_file)
    p = s.regimes.transition_matrix()
    dur = [120.0, 60.0, 15.0]
    for i in range(3):
        leave = 1 - math.exp(-1 / dur[i])
        assert p[i, i] == pytest.approx(1 - leave, abs=1e-15)
        assert p[i].sum() == pytest.approx(1.0, abs=1e-12)
    pi = np.array(s.regimes.initial_probs)
    np.testing.assert_allclose(pi @ p, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0)


def test_overrides_by_name_and_toml_values(base_file):
    s = load(
        base_file,
        "underlyings.SPY.volatility=0.2",
        "strategies.wheel_30d.put.delta=0.2",
        "underlyings.QQQ.expected_return=[0.1, 0.2, 0.3]",
        "regimes.initial=calm",
        "shocks.0.day=30",
    )
    assert s.underlyings[0].volatility == (0.2, 0.2, 0.2)
    assert s.strategies[0].put.delta == 0.2
    assert s.underlyings[1].expected_return == (0.1, 0.2, 0.3)
    assert s.regimes.initial_probs == (1.0, 0.0, 0.0)
    assert s.shocks[0].day == 30
    assert s.resolved["underlyings"][0]["volatility"] == 0.2


def test_transition_matrix_accepted(base_file, tmp_path):
    text = BASE.replace(
        "mean_duration_days = [120.0, 60.0, 15.0]\nexit_probabilities = [[0.0, 0.8, 0.2], [0.7, 0.0, 0.3], [0.1, 0.9, 0.0]]",
        "transition = [[0.99, 0.01, 0.0], [0.01, 0.98, 0.01], [0.0, 0.05, 0.95]]",
    )
    p = tmp_path / "t.toml"
    p.write_text(text)
    s = load(p)
    assert s.regimes.transition[2] == (0.0, 0.05, 0.95)


BAD_CASES = [
    ("underlyings.SPY.volatility=-0.2", "underlyings.SPY.volatility: -0.2 is not allowed (must be"),
    ("underlyings.SPY.spot=0", "underlyings.SPY.spot: 0.0 is not allowed (must be"),
    ("underlyings.SPY.jump_std=-0.1", "underlyings.SPY.jump_std: -0.1 is not allowed"),
    ("underlyings.SPY.volatility=[0.1, 0.2]", "underlyings.SPY.volatility: [0.1, 0.2] is not allowed"),
    ("underlyings.SPY.volatility=\"high\"", "underlyings.SPY.volatility: \"high\" is not allowed"),
    ("underlyings.SPY.colour=1", "underlyings.SPY.colour: unknown key"),
    ("run.paths=0", "run.paths: 0 is not allowed"),
    ("run.paths=1.5", "run.paths: 1.5 is not allowed (must be an integer"),
    ("run.horizon_years=true", "run.horizon_years: true is not allowed"),
    ("run.typo=1", "run.typo: unknown key"),
    ("regimes.exit_probabilities=[[0.0, 0.8, 0.2], [0.7, 0.0, 0.3], [0.1, 0.8, 0.0]]",
     "regimes.exit_probabilities[2]: [0.1, 0.8, 0.0] is not allowed (must be a row that sums to 1"),
    ("regimes.exit_probabilities=[[0.2, 0.6, 0.2], [0.7, 0.0, 0.3], [0.1, 0.9, 0.0]]",
     "regimes.exit_probabilities[0][0]: 0.2 is not allowed"),
    ("regimes.exit_probabilities=[[0.0, 1.2, -0.2], [0.7, 0.0, 0.3], [0.1, 0.9, 0.0]]",
     "regimes.exit_probabilities: [[0.0, 1.2, -0.2]"),
    ("regimes.mean_duration_days=[1.0, 2.0]", "regimes.mean_duration_days: [1.0, 2.0] is not allowed"),
    ("regimes.initial=\"panic\"", "regimes.initial: \"panic\" is not allowed"),
    ("correlation.matrix=[[1.0, 0.9], [0.2, 1.0]]", "correlation.matrix: [[1.0, 0.9], [0.2, 1.0]] is not allowed (must be a symmetric"),
    ("correlation.matrix=[[2.0, 0.5], [0.5, 1.0]]", "correlation.matrix: [[2.0, 0.5], [0.5, 1.0]] is not allowed (must be a matrix with unit diagonal"),
    ("strategies.wheel_30d.put.delta=1.5", "strategies.wheel_30d.put.delta: 1.5 is not allowed (must be a number in (0.0, 1.0))"),
    ("strategies.wheel_30d.put.delta=0", "strategies.wheel_30d.put.delta: 0.0 is not allowed"),
    ("strategies.wheel_30d.put.otm_pct=0.05", "strategies.wheel_30d.put.otm_pct: 0.05 is not allowed (must be absent when"),
    ("strategies.wheel_30d.manage.profit_take=1.0", "strategies.wheel_30d.manage.profit_take: 1.0 is not allowed (must be a number in [0.0, 1.0))"),
    ("strategies.wheel_30d.manage.stop_loss=0.5", "strategies.wheel_30d.manage.stop_loss: 0.5 is not allowed (must be 0 (off) or > 1)"),
    ("strategies.wheel_30d.manage.roll_when=\"always\"", "strategies.wheel_30d.manage.roll_when: \"always\" is not allowed (must be one of"),
    ("strategies.wheel_30d.underlyings=[\"IWM\"]", "strategies.wheel_30d.underlyings: \"IWM\" is not allowed"),
    ("strategies.wheel_30d.kind=\"strangle\"", "strategies.wheel_30d.kind: \"strangle\" is not allowed (must be one of"),
    ("strategies.wheel_30d.sizing.position_fraction=0", "strategies.wheel_30d.sizing.position_fraction: 0.0 is not allowed"),
    ("strategies.spread.width=0", "strategies.spread.width: 0.0 is not allowed (must be a number > 0.0)"),
    ("strategies.spread.width=-5", "strategies.spread.width: -5.0 is not allowed"),
    ("strategies.nosuch.put.delta=0.2", "strategies.nosuch: no such entry (must be one of: wheel_30d, spread)"),
    ("underlyings.IWM.spot=10", "underlyings.IWM: no such entry"),
    ("costs.slippage_per_share=-0.01", "costs.slippage_per_share: -0.01 is not allowed"),
    ("shocks.0.day=100000", "shocks.0.day: 100000 is not allowed"),
    ("nonsense", "--set: \"nonsense\" is not allowed (must be dotted.key=value)"),
    ("bogus=1", "bogus: unknown key"),
]


@pytest.mark.parametrize("override,message", BAD_CASES)
def test_bad_values_rejected_with_one_line(base_file, override, message):
    with pytest.raises(ScenarioError) as err:
        load(base_file, override)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_bad_files(tmp_path):
    with pytest.raises(ScenarioError, match="must be an existing TOML file"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nhorizon_years = 1")
    with pytest.raises(ScenarioError, match="is not valid TOML") as err:
        load_scenario(bad)
    assert "\n" not in str(err.value)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ScenarioError, match="underlyings: missing"):
        load_scenario(empty)


def test_scenario_error_is_value_error():
    assert issubclass(ScenarioError, ValueError)
    assert mcsim.ScenarioError is ScenarioError


def test_reducible_chain_needs_named_initial(tmp_path):
    text = BASE.replace(
        "mean_duration_days = [120.0, 60.0, 15.0]\nexit_probabilities = [[0.0, 0.8, 0.2], [0.7, 0.0, 0.3], [0.1, 0.9, 0.0]]",
        "transition = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]",
    )
    p = tmp_path / "r.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError, match="regimes.initial"):
        load_scenario(p)
    assert load_scenario(p, ["regimes.initial=normal"]).regimes.initial_probs == (0.0, 1.0, 0.0)


@settings(deadline=None, max_examples=60)
@given(vol=st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10))
def test_volatility_range_property(base_file, vol):
    if 0 < vol <= 5:
        assert load(base_file, f"underlyings.QQQ.volatility={vol!r}").underlyings[1].volatility[0] == vol
    else:
        with pytest.raises(ScenarioError, match=r"^underlyings\.QQQ\.volatility: .* is not allowed"):
            load(base_file, f"underlyings.QQQ.volatility={vol!r}")


@settings(deadline=None, max_examples=60)
@given(rho=st.floats(min_value=-1.5, max_value=1.5, allow_nan=False))
def test_correlation_property(base_file, rho):
    ov = f"correlation.matrix=[[1.0, {rho!r}], [{rho!r}, 1.0]]"
    if abs(rho) <= 1.0:
        s = load(base_file, ov)
        assert s.correlation[0][0][1] == rho
    else:
        with pytest.raises(ScenarioError, match=r"^correlation\.matrix: "):
            load(base_file, ov)


@settings(deadline=None, max_examples=40)
@given(junk=st.text(min_size=1, max_size=12).filter(lambda s: "\n" not in s and "=" not in s))
def test_unknown_keys_never_accepted(base_file, junk):
    key = "k" + "".join(c for c in junk if c.isalnum())
    with pytest.raises(ScenarioError) as err:
        load(base_file, f"costs.{key}=1")
    assert str(err.value).startswith(f"costs.{key}: unknown key")


def test_calendar_days_to_steps():
    from mcsim.scenario import calendar_days_to_steps

    assert calendar_days_to_steps(35, 252) == 24
    assert calendar_days_to_steps(365, 252) == 252
    assert calendar_days_to_steps(0, 252) == 0
