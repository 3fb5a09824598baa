"""A strategy that cannot trade says so (summary.json `warnings`, one stderr line per warning)."""

from __future__ import annotations

import json

import mcsim
from mcsim import cli
from mcsim.scenario import parse_scenario


def _raw(contracts: str) -> dict:
    return {"run": {"horizon_years": 0.1, "paths": 20, "seed": 1, "initial_equity": 100000.0},
            "underlyings": [{"name": "SPX", "spot": 4500.0, "volatility": 0.2, "strike_step": 5.0}],
            "strategies": [{"name": "wheel", "kind": "wheel", "sizing": {"contracts": contracts}},
                           {"name": "spread", "kind": "bull_put_spread", "width": 2000.0,
                            "sizing": {"contracts": contracts, "max_open": 2}}]}


def test_integer_contracts_on_an_index_warn_with_the_cause():
    summ = mcsim.summarize(mcsim.simulate(parse_scenario(_raw("integer"))))
    by = {w["strategy"]: w for w in summ["warnings"]}
    assert set(by) == {"wheel", "spread"} and by["wheel"]["share_of_paths_without_a_sale"] == 1.0
    assert "secures about $450,000" in by["wheel"]["message"] and "fractional" in by["wheel"]["message"]
    assert "risks up to $200,000" in by["spread"]["message"]
    assert mcsim.summarize(mcsim.simulate(parse_scenario(_raw("fractional"))))["warnings"] == []


def test_run_prints_each_warning_on_one_line(tmp_path, capsys):
    f = tmp_path / "spx.toml"
    f.write_text('[run]\nhorizon_years = 0.1\npaths = 10\n[[underlyings]]\nname = "SPX"\nspot = 4500.0\n'
                 'volatility = 0.2\n[[strategies]]\nname = "wheel"\nkind = "wheel"\n')
    assert cli.main(["run", str(f), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("mcsim: warning: wheel sold no option on 100% of paths")
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["warnings"][0]["strategy"] == "wheel"
