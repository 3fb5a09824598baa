"""Golden outputs: every stored case (tests/golden/make_golden.py) is reproduced bit for bit.

per_path, monthly and replay-log tables of the shipped scenarios and of a frozen set of the
differential generator's scenarios, compared with np.array_equal (floats exactly, nan == nan):
a refactor of the kernels must not change a single bit. New cases may be added to the file by
`python tests/golden/make_golden.py`; existing ones are never rewritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))

from make_golden import GOLDEN, ROOT, compute, load_cases  # noqa: E402

with np.load(GOLDEN) as _data:
    STORED = {k: _data[k] for k in _data.files}
    CASES = load_cases(_data)


# columns numpy derives from kernel outputs with vectorised transcendental functions (power,
# sqrt over a reduction): their last bit depends on numpy's build and the CPU's SIMD path, not on
# mcsim, so they are compared to 1e-13 relative; every kernel output stays bit-exact
DERIVED = {"cagr", "ann_vol", "sharpe", "sortino"}


def _equal(a: np.ndarray, b: np.ndarray) -> list[str]:
    if a.dtype.names != b.dtype.names or a.shape != b.shape:
        return [f"layout: stored {a.dtype.names} {a.shape}, now {b.dtype.names} {b.shape}"]
    bad = []
    for f in a.dtype.names:
        x, y = a[f], b[f]
        if f in DERIVED:
            same = np.allclose(x, y, rtol=1e-13, atol=0.0, equal_nan=True)
        else:
            same = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        if not same:
            i = int(np.flatnonzero(~((x == y) | ((x != x) & (y != y))))[0]) if x.dtype.kind == "f" \
                else int(np.flatnonzero(x != y)[0])
            bad.append(f"{f}: row {i} stored {x[i]!r} now {y[i]!r}")
    return bad


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(case):
    now = compute(case)
    stored = {k: v for k, v in STORED.items()
              if k.startswith(case["name"] + "/") and not k.endswith("/case") and "/market/" not in k}
    assert sorted(now) == sorted(stored)
    bad = []
    for key in sorted(stored):
        bad += [f"{key}: {d}" for d in _equal(stored[key], now[key])]
    assert not bad, "\n".join(bad[:20])


def test_every_shipped_scenario_is_golden():
    names = {c["name"] for c in CASES}
    missing = [f.stem for f in sorted((ROOT / "scenarios").glob("*.toml")) if f"shipped/{f.stem}" not in names]
    assert not missing, f"run tests/golden/make_golden.py to add {missing}"
