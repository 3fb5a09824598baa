"""A hostile new user (issue 9): nothing that isn't ours is deleted, never a traceback, bad input
named in one line, no silent coercion.

Each case asserts the exit status, exactly one line on stderr without a traceback or raw control
characters, and that nothing on disk changed (a snapshot of every file's bytes before and after).
In-process cases drive `mcsim.cli.main` with the stand-in engine of test_cli (the refusals happen
before any simulation); the cases that need a real process (SIGKILL, a read-only install) run
`python -m mcsim`. The home directory case sets $HOME for the test (mcsim reads it through
os.path.expanduser).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mcsim
from mcsim import cli, io, memory
from mcsim.scenario import MAX_STRATEGIES, load_scenario, parse_scenario

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import _SLOW_ENGINE, TINY, fake_replay, fake_simulate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(mcsim, "simulate", fake_simulate, raising=False)
    monkeypatch.setattr(mcsim, "replay", fake_replay, raising=False)


@pytest.fixture(scope="module")
def a_result(tmp_path_factory) -> Path:
    """A genuine result directory (no plots), written once for the module."""
    from test_metrics import synthetic_result

    out = tmp_path_factory.mktemp("result") / "r"
    io.write_results(synthetic_result(n_paths=10), out, plots=False)
    return out


def snapshot(root: Path) -> dict:
    """Every entry under `root` (symlinks not followed): relative path -> bytes, 'dir' or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


def one_line(err: str, want: str = "") -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "\x1b" not in err, err
    assert want in err, err
    return lines[0]


def fails(args, capsys, code=2, want="") -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == code, err
    return one_line(err, want)


# --------------------------------------------------------------------------------------------
# 1. --force replaces only what mcsim wrote


def test_force_on_the_home_directory_refused_and_untouched(tiny, tmp_path, fake_engine, capsys, monkeypatch):
    home = tmp_path / "h"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "thesis.tex").write_bytes(b"\\chapter{Years of work}\n" * 100)
    before = snapshot(home)
    monkeypatch.setenv("HOME", str(home))  # what `~` means to mcsim (os.path.expanduser)
    monkeypatch.chdir(tmp_path)
    fails(["run", tiny, "--paths", "20", "--out", home, "--force"], capsys, 2, "home directory")
    assert snapshot(home) == before


@pytest.mark.parametrize("what", ["plain file", "other directory", "symlink to a result", "root", "working directory",
                                  "result with a foreign file", "forged marker"])
def test_force_refuses_what_is_not_an_mcsim_result(what, tiny, tmp_path, fake_engine, capsys, monkeypatch, a_result):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "sentinel.txt").write_text("keep me")
    real = work / "real_result"
    shutil.copytree(a_result, real)
    target = {
        "plain file": work / "sentinel.txt",
        "other directory": work / "mine",
        "symlink to a result": work / "link",
        "root": Path("/"),
        "working directory": Path("."),
        "result with a foreign file": real,
        "forged marker": work / "forged",
    }[what]
    if what == "other directory":
        (work / "mine").mkdir()
        (work / "mine" / "data.csv").write_text("1,2\n")
    elif what == "symlink to a result":
        (work / "link").symlink_to(real)
    elif what == "result with a foreign file":
        (real / "my_notes.txt").write_text("notes")
    elif what == "forged marker":
        (work / "forged").mkdir()
        (work / "forged" / io.MARKER).write_text('{"mcsim": "something else"}')
    before = snapshot(work)
    fails(["run", tiny, "--paths", "10", "--out", target, "--force", "--quiet"], capsys, 2, "--force")
    assert snapshot(work) == before


def test_force_replaces_a_result_directory_and_every_command_marks_its_output(tiny, tmp_path, fake_engine, capsys):
    out = tmp_path / "r"
    for seed in ("1", "2"):
        assert cli.main(["run", str(tiny), "--paths", "12", "--seed", seed, "--out", str(out), "--force", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["provenance"]["seed"] == 2
    marker = io.read_marker(out)
    assert set(marker["files"]) | {io.MARKER} == {p.name for p in out.iterdir()}
    for args in (["sweep", tiny, "--grid", "strategies.wheel.put.delta=0.2,0.3", "--out", tmp_path / "s"],
                 ["replay", tiny, "--path", "3", "--strategy", "wheel", "--out", tmp_path / "y"],
                 ["compare", tiny, tiny, "--out", tmp_path / "c"]):
        assert cli.main([str(a) for a in args] + ["--paths", "12", "--quiet"]) == 0
        assert io.read_marker(args[-1]) is not None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _staging(d: Path, pid: int) -> Path:
    d.mkdir()
    (d / io.STAGING_MARKER).write_text(json.dumps({"mcsim": "staging", "pid": pid, "host": os.uname().nodename}))
    (d / "paths.parquet").write_bytes(b"half written")
    return d


def test_stale_staging_of_killed_runs_is_removed_and_nothing_else(tiny, tmp_path, fake_engine, capsys):
    res = tmp_path / "results"
    res.mkdir()
    dead = _staging(res / ".old_run.tmp-abc123", _dead_pid())
    alive = _staging(res / ".busy.tmp-def456", os.getpid())          # a run still writing
    user = res / ".mine.tmp-xyz"                                       # looks alike, not ours
    user.mkdir()
    (user / "data").write_text("mine")
    # a replace killed between its two renames: the previous result waits beside its missing target
    prev = _staging(res / ".kept.old-q1w2e3", _dead_pid())
    (prev / io.MARKER).write_text(json.dumps({"mcsim": "mcsim result directory", "files": ["paths.parquet"]}))
    assert cli.main(["run", str(tiny), "--paths", "10", "--out", str(res / "new"), "--quiet"]) == 0
    assert not dead.exists() and alive.exists() and (user / "data").read_text() == "mine"
    assert (res / "kept" / "paths.parquet").read_bytes() == b"half written" and not prev.exists()
    assert not (res / "kept" / io.STAGING_MARKER).exists()


def test_sigkill_leftovers_are_cleaned_by_the_next_run(tiny, tmp_path, fake_engine, capsys):
    out = tmp_path / "results" / "tiny"
    marker = tmp_path / "simulating"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_ENGINE, "run", str(tiny), "--out", str(out), str(marker)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists():
        assert p.poll() is None and time.time() - t0 < 120, p.communicate()
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    left = [c.name for c in (tmp_path / "results").iterdir()]
    assert len(left) == 1 and left[0].startswith(".tiny.tmp-")  # what SIGKILL leaves
    assert cli.main(["run", str(tiny), "--paths", "10", "--out", str(out), "--quiet"]) == 0
    assert [c.name for c in (tmp_path / "results").iterdir()] == ["tiny"]


# --------------------------------------------------------------------------------------------
# 2. any number of strategies up to the documented limit


def _many(n: int, paths: int = 6) -> dict:
    return {"run": {"horizon_years": 0.1, "paths": paths, "seed": 3},
            "underlyings": [{"name": "SPY", "spot": 100.0, "volatility": 0.2}],
            "strategies": [{"name": f"pw{i}", "kind": "put_write", "put": {"delta": round(0.05 + 0.0035 * i, 6)}}
                           for i in range(n)]}


def test_127_strategies_plus_baselines_run_and_summarize():
    sc = parse_scenario(_many(127))
    res = mcsim.simulate(sc)
    cat = res.per_path["strategy"]
    assert list(cat.cat.categories) == [f"pw{i}" for i in range(127)] + ["buy_and_hold", "cash"]
    assert (cat.value_counts() == 6).all() and res.monthly["strategy"].nunique() == 129
    summ = mcsim.summarize(res)
    assert len(summ["metrics"]) == 129 and len(summ["paired"]) == 127 * 2 + 1  # each against both baselines


def test_sweep_of_126_values_writes_every_point(tiny, tmp_path, capsys):
    values = ",".join(f"{0.05 + 0.0035 * i:.4f}" for i in range(126))
    out = tmp_path / "sw"
    assert cli.main(["sweep", str(tiny), "--grid", f"strategies.wheel.put.delta={values}", "--paths", "6",
                     "--set", "run.horizon_years=0.1", "--out", str(out), "--quiet"]) == 0
    df = pd.read_parquet(out / "sweep.parquet")
    assert df["point"].nunique() == 126 and len(df) == 126 * 4


def test_more_than_the_strategy_limit_is_one_line(tmp_path, capsys):
    lines = ['[run]\npaths = 5\n[[underlyings]]\nname = "SPY"\nspot = 100.0\nvolatility = 0.2\n']
    lines += [f'[[strategies]]\nname = "s{i}"\nkind = "put_write"\n' for i in range(MAX_STRATEGIES + 1)]
    f = tmp_path / "many.toml"
    f.write_text("\n".join(lines))
    fails(["validate", f], capsys, 2, f"at most {MAX_STRATEGIES}")


# --------------------------------------------------------------------------------------------
# 4. a bounded sweep grid


def test_sweep_grid_is_bounded(tiny, tmp_path, fake_engine, capsys):
    v300 = ",".join(str(0.1 + 0.001 * i) for i in range(300))
    line = fails(["sweep", tiny, "--grid", f"strategies.wheel.put.delta={v300}",
                  "--grid", f"strategies.wheel.call.delta={v300}", "--out", tmp_path / "sw"], capsys, 2, "--grid")
    assert "90,000" in line and f"{memory.MAX_GRID_POINTS:,}" in line
    assert not (tmp_path / "sw").exists()


# --------------------------------------------------------------------------------------------
# 5. nesting


def test_deeply_nested_toml_and_set_values_are_one_line(tiny, tmp_path, capsys):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    fails(["validate", deep], capsys, 2, "nested deeper")
    fails(["validate", tiny, "--set", "run.paths=" + "[" * 3000 + "]" * 3000], capsys, 2, "nested deeper")
    mid = tmp_path / "mid.toml"  # deep enough to pass the parser, too deep for a scenario
    mid.write_text("a = " + "[" * 40 + "]" * 40 + "\n")
    fails(["validate", mid], capsys, 2, "nested deeper than 32")


# --------------------------------------------------------------------------------------------
# 6. a read-only install


def _read_only_command(pkg: Path, home: Path, args: list[str]) -> list[str]:
    inner = " ".join(shlex.quote(a) for a in args)
    if os.geteuid() == 0:  # root ignores permissions: a read-only bind mount in a private namespace
        return ["unshare", "-m", "sh", "-c",
                f"mount --bind {shlex.quote(str(pkg))} {shlex.quote(str(pkg))} && "
                f"mount -o remount,bind,ro {shlex.quote(str(pkg))} && "
                f"mount --bind {shlex.quote(str(home))} {shlex.quote(str(home))} && "
                f"mount -o remount,bind,ro {shlex.quote(str(home))} && exec {inner}"]
    return args


def test_read_only_install_and_home_still_work(tmp_path):
    pkg = Path(mcsim.__file__).resolve().parent
    home = tmp_path / "home"
    home.mkdir()
    cache = tmp_path / "tmp"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR")}
    env.update(HOME=str(home), TMPDIR=str(cache))
    if os.geteuid() != 0:  # a private read-only copy of the package instead of a mount
        copy = tmp_path / "ro" / "mcsim"
        shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = str(copy.parent)
        pkg = copy
        for d in [copy, *copy.rglob("*")] + [home]:
            if d.is_dir():
                d.chmod(0o555)
    code = ("import mcsim, numpy as np; sc = mcsim.load_scenario(%r, ['run.horizon_years=0.05']); "
            "m = mcsim.simulate_market(sc, 3, 1); print('ok', m.spot.shape)") % str(ROOT / "scenarios" / "spy_wheel.toml")
    try:
        for args, want in (([sys.executable, "-m", "mcsim", "--help"], "usage: mcsim"),
                           ([sys.executable, "-m", "mcsim", "validate", str(ROOT / "scenarios" / "spy_wheel.toml")], "ok: "),
                           ([sys.executable, "-c", code], "ok (3, 14, 1)")):
            r = subprocess.run(_read_only_command(pkg, home, args), env=env, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0 and want in r.stdout, (r.returncode, r.stdout, r.stderr)
            assert r.stderr == "", r.stderr
        # the kernels were compiled into a cache of mcsim's own, named by the source digest
        assert any(cache.glob("mcsim-numba-*/numba-*/**/*.nbi"))
        assert list(home.iterdir()) == []
    finally:
        for d in [home, *tmp_path.rglob("*")]:
            if d.is_dir() and not d.is_symlink():
                d.chmod(0o755)


# --------------------------------------------------------------------------------------------
# 7. input hygiene


def test_one_assignment_per_set(tiny, capsys):
    fails(["validate", tiny, "--set", "run.paths=5\nfoo=1"], capsys, 2, "--set")
    fails(["validate", tiny, "--set", "run.paths=5\rfoo=1"], capsys, 2, "--set")
    fails(["validate", tiny, "--set", "run.pa\tths=5"], capsys, 2, "--set")


@pytest.mark.parametrize("name", ["a\x1b[31mred", "tab\there", "a/b", "..\\up", "x" * 65, " padded", "new\nline"])
def test_names_are_printable_without_separators(name, tmp_path, capsys):
    for table in ("strategies", "underlyings"):
        text = TINY.replace('name = "wheel"' if table == "strategies" else 'name = "SPY"', f"name = {json.dumps(name)}")
        f = tmp_path / f"{table}.toml"
        f.write_text(text)
        line = fails(["validate", f], capsys, 2, f"{table}.0.name")
        assert name not in line or name.isprintable()
    f = tmp_path / "regimes.toml"
    f.write_text(TINY.replace('names = ["calm", "stressed"]', f'names = ["calm", {json.dumps(name)}]'))
    fails(["validate", f], capsys, 2, "regimes.names")


def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    fails(["validate", tmp_path / "a\x1b[2Jb.toml"], capsys, 2, "scenario")
    fails(["run", tmp_path / "x.toml", "--paths", "\x1b[31m"], capsys, 2, "--paths")


# --------------------------------------------------------------------------------------------
# 8. the Python API does not coerce


def test_python_api_arguments_are_type_checked(tiny):
    sc = load_scenario(tiny, ["run.paths=4"])
    market = mcsim.MarketPaths.from_arrays(np.full(30, 100.0), underlyings="SPY")
    cases = [
        (lambda: mcsim.simulate(sc, n_paths=2.7), TypeError, "n_paths"),
        (lambda: mcsim.simulate(sc, n_paths=True), TypeError, "n_paths"),
        (lambda: mcsim.simulate(sc, n_paths=0), ValueError, "n_paths"),
        (lambda: mcsim.simulate(sc, seed=1.5), TypeError, "seed"),
        (lambda: mcsim.simulate(sc, seed=-1), ValueError, "seed"),
        (lambda: mcsim.simulate(sc, chunk_paths=2.0), TypeError, "chunk_paths"),
        (lambda: mcsim.simulate(sc, threads=False), TypeError, "threads"),
        (lambda: mcsim.simulate(None), TypeError, "scenario"),
        (lambda: mcsim.simulate({"run": {}}), TypeError, "scenario"),
        (lambda: mcsim.replay(sc, path=1.5, strategy="wheel"), TypeError, "path"),
        (lambda: mcsim.replay(sc, path=1, strategy=3), TypeError, "strategy"),
        (lambda: mcsim.simulate_market(sc, n_paths=3.0, seed=1), TypeError, "n_paths"),
        (lambda: mcsim.run_strategies(sc, "market"), TypeError, "market"),
        (lambda: mcsim.MarketPaths.from_arrays(np.array([100 + 1j, 101])), TypeError, "spot"),
        (lambda: mcsim.MarketPaths.from_arrays(np.full(5, 100.0), atm_iv=np.array(["a"] * 5)), TypeError, "atm_iv"),
        (lambda: mcsim.load_scenario(tiny, overrides="run.paths=5"), TypeError, "overrides"),
        (lambda: mcsim.load_scenario(tiny, overrides=[5]), TypeError, "overrides"),
        (lambda: mcsim.load_scenario(None), TypeError, "path"),
        (lambda: mcsim.summarize(None), TypeError, "result"),
        (lambda: mcsim.summarize({}), TypeError, "result"),
    ]
    for call, exc, name in cases:
        with pytest.raises(exc, match=name):
            call()
    assert mcsim.run_strategies(sc, market.__class__.from_arrays(np.full(30, 100.0), underlyings="SPY")).n_paths == 1


# --------------------------------------------------------------------------------------------
# 9. a misspelt key is unknown, not missing


def test_misspelt_key_is_reported_before_missing_ones_with_a_suggestion(tiny, tmp_path, capsys):
    f = tmp_path / "typo.toml"
    f.write_text(TINY.replace("volatility = [0.15, 0.40]", "volatilty = [0.15, 0.40]"))
    line = fails(["validate", f], capsys, 2)
    assert 'unknown key "volatilty" (did you mean "volatility"?' in line and "missing" not in line
    f.write_text(TINY.replace("spot = 100.0", "colour = 1"))  # unknown and missing: unknown first
    assert 'unknown key "colour"' in fails(["validate", f], capsys, 2)
    f.write_text(TINY.replace('kind = "bull_put_spread"', 'kind = "bull_put_spread"\ncall = {}'))
    assert 'unknown key "call" for kind "bull_put_spread"' in fails(["validate", f], capsys, 2)
    f.write_text(TINY.replace("[strategies.sizing]\nposition_fraction", "[strategies.sizing]\nposition_fracton"))
    assert 'did you mean "position_fraction"' in fails(["validate", f], capsys, 2)


# --------------------------------------------------------------------------------------------
# smaller: environment failures name the user's path; unexpected errors leave a traceback file


def test_unwritable_output_location_names_the_users_path(tiny, tmp_path, fake_engine, capsys):
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    line = fails(["run", tiny, "--paths", "5", "--out", tmp_path / "afile" / "sub", "--quiet"], capsys, 1)
    assert str(tmp_path / "afile" / "sub") in line and ".tmp-" not in line
    assert snapshot(tmp_path) == before


def test_full_disk_while_writing_leaves_nothing(tiny, tmp_path, fake_engine, capsys, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "write_parquet", full)
    before = snapshot(tmp_path)
    line = fails(["run", tiny, "--paths", "5", "--out", tmp_path / "r", "--quiet"], capsys, 1, "No space left")
    assert f'"{tmp_path / "r"}"' in line and ".tmp-" not in line
    assert snapshot(tmp_path) == before


def test_unexpected_error_is_one_line_and_the_traceback_is_saved(tiny, tmp_path, capsys, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(mcsim, "simulate", broken)
    monkeypatch.setenv("HOME", str(tmp_path))
    line = fails(["run", tiny, "--out", tmp_path / "r", "--quiet"], capsys, 1, "internal error: RuntimeError")
    saved = Path(line.split("full traceback in ")[1].split(";")[0])
    assert "Traceback" in saved.read_text() and "kernel exploded" in saved.read_text()
    assert not (tmp_path / "r").exists()

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(mcsim, "simulate", oom)
    fails(["run", tiny, "--out", tmp_path / "r", "--quiet"], capsys, 1, "out of memory")
