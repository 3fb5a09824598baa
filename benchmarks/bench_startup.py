"""Start-up of issue 13: `mcsim run spy_wheel --paths 1000` end to end on a warm cache.

    python benchmarks/bench_startup.py [--repeat 5] [--paths 1000]

Each run is a new process (`python -m mcsim run spy_wheel --paths N --quiet --out TMP`), so it
pays what a user pays: interpreter start, imports (numba loading its cached kernels), scenario
loading, simulation, writing the result files, plots and report.html. One warm-up run first (it
compiles or loads the kernels into numba's cache), then the median of --repeat runs. Also the
import of `mcsim.cli` alone, in a new process, median of --repeat. Target: under 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wall(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip().splitlines()[-1:]}")
    return wall


def bench_startup(repeat: int = 5, paths: int = 1000) -> dict:
    """Median wall seconds of the whole command and of `import mcsim.cli`, each in a new process."""
    with tempfile.TemporaryDirectory() as d:
        def run(i):
            return _wall([sys.executable, "-m", "mcsim", "run", "spy_wheel", "--paths", str(paths), "--quiet",
                          "--out", str(Path(d) / f"r{i}")])

        run("warm")
        runs = [run(i) for i in range(repeat)]
    imports = [_wall([sys.executable, "-c", "import mcsim.cli"]) for _ in range(repeat)]
    return {"paths": paths, "run_s": statistics.median(runs), "runs_s": runs,
            "import_cli_s": statistics.median(imports), "target_s": 3.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--paths", type=int, default=1000)
    a = ap.parse_args(argv)
    r = bench_startup(a.repeat, a.paths)
    print(f"mcsim run spy_wheel --paths {a.paths:,}: {r['run_s']:.2f} s wall (median of {a.repeat}: "
          f"{', '.join(f'{x:.2f}' for x in r['runs_s'])}); import mcsim.cli {r['import_cli_s']:.2f} s; target < 3 s")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
