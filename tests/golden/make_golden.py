"""Freeze (or recompute) the golden outputs that every kernel refactor must reproduce bit for bit.

    python tests/golden/make_golden.py                     # add new cases to tests/golden/golden.npz
    python tests/golden/make_golden.py --refresh NAME ...  # recompute named cases after a deliberate
                                                           # model change (say which, and why, in the commit)

Cases:
* every shipped scenario (scenarios/*.toml) at its own seed, GOLDEN_PATHS paths, horizon capped at
  GOLDEN_YEARS: `Result.per_path`, `Result.monthly`, and the replay log of path 0 of every
  strategy (baselines included);
* a fixed set of the differential generator's scenarios (tests/test_reference_vs_kernels.py: the
  designed ones, seeded simulated markets, seeded hand-made markets). Their raw tables (and the
  hand-made market arrays) are frozen in the file too, so a later change of the generator never
  changes an existing case.

`compute(case)` is shared with tests/test_golden.py, which compares with np.array_equal (floats
bit-identical, nan == nan). New cases may be added; existing ones must never change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))

import mcsim  # noqa: E402
from mcsim.engine import replay_market  # noqa: E402
from mcsim.market import MarketPaths  # noqa: E402
from mcsim.scenario import parse_scenario  # noqa: E402

GOLDEN = HERE / "golden.npz"
GOLDEN_PATHS = 40
GOLDEN_YEARS = 1.0
REPLAY_ROWS = (0,)
SEEDED = range(0, 16)
HAND_MADE = range(0, 8)


def shipped_cases() -> list[dict]:
    out = []
    for f in sorted((ROOT / "scenarios").glob("*.toml")):
        out.append({"name": f"shipped/{f.stem}", "file": f"scenarios/{f.name}"})
    return out


def generated_cases() -> list[dict]:
    """The generator's scenarios, as raw tables (and hand-made markets), frozen at creation."""
    from test_reference_vs_kernels import RandomChooser, _designed, build_raw, hand_made_market

    out = []
    for k, raw in enumerate(_designed()):
        out.append({"name": f"designed/{k}", "raw": raw, "paths": 4})
    for s in SEEDED:
        out.append({"name": f"seeded/{s}", "raw": build_raw(RandomChooser(1000 + s)), "paths": 3})
    cc = [s for s in range(200)
          if any(x["kind"] == "covered_call" for x in build_raw(RandomChooser(1000 + s))["strategies"])]
    for s in cc[:4]:
        out.append({"name": f"seeded_cc/{s}", "raw": build_raw(RandomChooser(1000 + s)), "paths": 3})
    for s in HAND_MADE:
        ch = RandomChooser(20000 + s)
        raw = build_raw(ch)
        m = hand_made_market(ch, parse_scenario(raw), n_paths=3)
        out.append({"name": f"hand_made/{s}", "raw": raw, "spot": m.spot, "atm_iv": m.atm_iv,
                    "regime": m.regime})
    return out


def _scenario(case):
    if "file" in case:
        sc = mcsim.load_scenario(ROOT / case["file"])
        if sc.run.horizon_years > GOLDEN_YEARS:
            sc = mcsim.load_scenario(ROOT / case["file"], [f"run.horizon_years={GOLDEN_YEARS}"])
        return sc
    return parse_scenario(case["raw"])


def _market(case, sc):
    if "spot" in case:
        return MarketPaths(case["spot"], case["atm_iv"], case["regime"], sc.underlying_names,
                           sc.run.steps_per_year)
    n = case.get("paths", GOLDEN_PATHS)
    return mcsim.simulate_market(sc, n_paths=n, seed=sc.run.seed)


def _frame_arrays(key, df) -> dict:
    """One record array per frame (fields = columns; strings as fixed-width unicode)."""
    cols = []
    for col in df.columns:
        v = df[col]
        if not (isinstance(v.dtype, np.dtype) and v.dtype.kind in "biuf"):
            cols.append(np.array([str(x) for x in v], dtype="U32"))
        else:
            cols.append(v.to_numpy())
    dt = [(c, a.dtype) for c, a in zip(df.columns, cols)]
    rec = np.empty(len(df), dtype=dt)
    for c, a in zip(df.columns, cols):
        rec[c] = a
    return {key: rec}


def compute(case) -> dict:
    """{key: array} of one case: per_path, monthly, replay logs (key prefix = case name)."""
    sc = _scenario(case)
    market = _market(case, sc)
    res = mcsim.run_strategies(sc, market)
    name = case["name"]
    out = {}
    out.update(_frame_arrays(f"{name}/per_path", res.per_path))
    out.update(_frame_arrays(f"{name}/monthly", res.monthly))
    for strat in res.strategies:
        for row in REPLAY_ROWS:
            if row < market.n_paths:
                log = replay_market(sc, market, strat, row=row)
                out.update(_frame_arrays(f"{name}/log/{strat}/{row}", log))
    return out


def freeze_case(case) -> dict:
    """What the file stores to rebuild the case later (besides its outputs)."""
    name = case["name"]
    out = {}
    meta = {k: case[k] for k in ("file", "raw", "paths") if k in case}
    out[f"{name}/case"] = np.array(json.dumps(meta, sort_keys=True))
    for k in ("spot", "atm_iv", "regime"):
        if k in case:
            out[f"{name}/market/{k}"] = case[k]
    return out


def load_cases(data) -> list[dict]:
    """The cases stored in a golden file (`np.load` result), in file order."""
    cases = []
    for key in data.files:
        if key.endswith("/case"):
            name = key[: -len("/case")]
            case = {"name": name, **json.loads(str(data[key]))}
            for k in ("spot", "atm_iv", "regime"):
                mk = f"{name}/market/{k}"
                if mk in data.files:
                    case[k] = data[mk]
            cases.append(case)
    return cases


def main(argv=None):
    """Write the golden file; existing cases are kept as stored (only new cases are added), except
    those named after --refresh, whose outputs are recomputed from their frozen inputs."""
    argv = list(argv or [])
    refresh = set(argv[argv.index("--refresh") + 1:]) if "--refresh" in argv else set()
    existing = {}
    if GOLDEN.exists():
        with np.load(GOLDEN) as data:
            existing = {k: data[k] for k in data.files}
    known = {k[: -len("/case")] for k in existing if k.endswith("/case")}
    arrays = dict(existing)
    if refresh:
        with np.load(GOLDEN) as data:
            stored = {c["name"]: c for c in load_cases(data)}
        unknown = refresh - set(stored)
        if unknown:
            raise SystemExit(f"--refresh: no such case: {', '.join(sorted(unknown))}")
        for name in sorted(refresh):
            arrays = {k: v for k, v in arrays.items() if not k.startswith(f"{name}/") or k == f"{name}/case"
                      or k.startswith(f"{name}/market/")}
            arrays.update(compute(stored[name]))
            print("refreshed", name)
    for case in shipped_cases() + generated_cases():
        if case["name"] in known:
            continue
        arrays.update(freeze_case(case))
        arrays.update(compute(case))
        print("added", case["name"])
    np.savez_compressed(GOLDEN, **arrays)
    print(f"{GOLDEN}: {len(arrays)} arrays, {GOLDEN.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
