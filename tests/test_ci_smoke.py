"""CI smokes in child processes, so `python -m pytest` (what CI runs) covers them:

* NUMBA_DISABLE_JIT=1: the kernels run as plain Python (their lines visible to coverage, Python
  tracebacks) on the designed differential scenarios, against the plain-Python reference;
* NUMBA_BOUNDSCHECK=1: every array index of the compiled kernels is checked, on the designed
  and a few generated differential scenarios and the shipped scenarios' golden outputs (bounds
  checks change no arithmetic, so the goldens must still match bit for bit).

The bounds-checked kernels compile into their own cache (`.numba_boundscheck/<source digest>`,
as numba would otherwise load the unchecked kernels of the normal cache). Both children start
together (two cores: the uncompiled run and the compile overlap).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHILD = "MCSIM_CI_SMOKE_CHILD"

NO_JIT = ["tests/test_reference_vs_kernels.py::test_designed_scenarios"]
BOUNDSCHECK = (["tests/test_reference_vs_kernels.py::test_designed_scenarios"]
               + [f"tests/test_reference_vs_kernels.py::test_seeded_hand_made_markets[{s}]" for s in range(4)]
               + [f"tests/test_reference_vs_kernels.py::test_seeded_scenarios[{s}]" for s in range(4)]
               + ["tests/test_golden.py::test_golden_case"])

pytestmark = pytest.mark.skipif(os.environ.get(CHILD) == "1", reason="inside a CI smoke child")


def _boundscheck_cache() -> Path:
    sys.path.insert(0, str(ROOT))
    from mcsim._jit_cache import source_digest

    base = ROOT / ".numba_boundscheck"
    here = base / source_digest()[:16]
    if base.is_dir():
        for old in base.iterdir():
            if old != here:
                shutil.rmtree(old, ignore_errors=True)
    here.mkdir(parents=True, exist_ok=True)
    return here


def _start(env_extra: dict, selection: list[str], extra_args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, **env_extra, **{CHILD: "1"})
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", *extra_args,
           *selection]
    return subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def children():
    procs = {
        "no_jit": _start({"NUMBA_DISABLE_JIT": "1"}, NO_JIT, []),
        "boundscheck": _start({"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(_boundscheck_cache())},
                              BOUNDSCHECK, ["-k", "not (test_golden_case and not shipped)"]),
    }
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()


def _wait(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-6000:]
    return out


def test_differential_smoke_without_jit(children):
    out = _wait(children["no_jit"])
    assert " passed" in out and "failed" not in out, out[-2000:]


def test_differential_smoke_with_boundscheck(children):
    out = _wait(children["boundscheck"])
    assert " passed" in out and "failed" not in out, out[-2000:]
