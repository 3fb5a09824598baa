"""Start-up (issue 13): what `mcsim run` does to start fast gives the same files.

* `plots.start_plots` with a forked child writes the same PNG bytes as drawing in one process;
  a child that fails is made up for by this process, and an error in a plot is raised here.
* `plots.png_bytes` (layout once, drawn once) gives the pixels of `Figure.savefig`.
* `import mcsim` builds none of mcsim.pricing's numba ufuncs; they give the same bits when used.
"""

from __future__ import annotations

import io as _io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mcsim
from mcsim import plots

sys.path.insert(0, str(Path(__file__).parent))
from test_metrics import synthetic_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")


@pytest.fixture(scope="module")
def res_summary():
    res = synthetic_result(n_paths=80)
    return res, mcsim.summarize(res)


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@needs_fork
def test_forked_plots_are_the_same_bytes(res_summary, tmp_path):
    res, summary = res_summary
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert plots.start_plots(res, one, summary, fork=False).finish() == list(plots.PLOT_FILES.values())
    job = plots.start_plots(res, two, summary, fork=True)
    assert job.pid is not None
    assert job.finish() == list(plots.PLOT_FILES.values())
    assert job.pid is None                  # reaped
    assert _files(one) == _files(two) and len(_files(one)) == len(plots.PLOT_FILES)


@needs_fork
def test_a_failed_child_is_made_up_for_and_a_plot_error_is_raised_here(res_summary, tmp_path, monkeypatch):
    res, summary = res_summary
    parent = os.getpid()
    render = plots._render

    def child_dies(result, kinds, d, s):
        if os.getpid() != parent:
            os._exit(3)
        render(result, kinds, d, s)

    monkeypatch.setattr(plots, "_render", child_dies)
    (tmp_path / "a").mkdir()
    assert plots.start_plots(res, tmp_path / "a", summary, fork=True).finish() == list(plots.PLOT_FILES.values())
    assert all((tmp_path / "a" / f).is_file() for f in plots.PLOT_FILES.values())
    monkeypatch.setattr(plots, "_render", render)

    figure = plots.figure

    def broken(result, kind, s=None):
        if kind == plots.CHILD_KINDS[0]:
            raise RuntimeError("plot exploded")
        return figure(result, kind, s)

    monkeypatch.setattr(plots, "figure", broken)
    (tmp_path / "b").mkdir()
    job = plots.start_plots(res, tmp_path / "b", summary, fork=True)
    try:
        with pytest.raises(RuntimeError, match="plot exploded"):
            job.finish()
    finally:
        job.abort()
    assert job.pid is None


def test_png_bytes_are_the_pixels_of_savefig(res_summary):
    from PIL import Image

    res, summary = res_summary
    for kind in plots.FIGURE_KINDS:
        buf = _io.BytesIO()
        plots.figure(res, kind, summary).savefig(buf, format="png", dpi=plots.DPI)
        fig = plots.figure(res, kind, summary)
        a = np.asarray(Image.open(_io.BytesIO(plots.png_bytes(fig))))
        b = np.asarray(Image.open(buf))
        assert a.shape == b.shape and np.array_equal(a, b), kind
        assert fig.get_layout_engine() is not None      # put back


def test_import_builds_no_ufunc_and_the_ufuncs_give_the_same_bits():
    code = ("import mcsim.cli, mcsim.pricing as p\n"
            "lazy = [p._bs_price_u, p._bs_delta_u, p._smile_iv_u, p._strike_for_delta_u, p._merton_price_u]\n"
            "print(all(u._ufunc is None for u in lazy))\n"
            "import numpy as np\n"
            "s = np.linspace(80.0, 120.0, 9)\n"
            "v = p.bs_price(s, 100.0, 0.25, 0.03, 0.01, 0.2, True)\n"
            "w = np.array([p.bs_price_nb(x, 100.0, 0.25, 0.03, 0.01, 0.2, True) for x in s])\n"
            "print(v.tobytes() == w.tobytes())\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "True"], out.stderr
