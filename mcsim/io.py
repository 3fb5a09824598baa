"""Result files: summary.json, paths.parquet, monthly.parquet, plots, written all-or-nothing.

Everything goes into a temporary directory beside the target (`.NAME.tmp-XXXX`) and is renamed
into place at the end, so an interrupted or failed run leaves no half-written result. An existing
target is never replaced unless `force=True`; then the old directory is moved aside, the new one
renamed in, and the old one deleted (the target is missing only between two renames).

Both Parquet files carry the provenance (mcsim version, resolved scenario with overrides, seed,
paths, steps, block size, wall time, path-steps/s) as JSON under the schema metadata key `mcsim`.
Above `MONTHLY_SUBSET_PATHS` paths, `monthly.parquet` holds the rows of the lowest
`MONTHLY_SUBSET_PATHS` path indices only (stated in the metadata); the summary uses every path.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ScenarioError

__all__ = [
    "MONTHLY_SUBSET_PATHS",
    "METADATA_KEY",
    "OutputExistsError",
    "check_target",
    "staged_dir",
    "provenance",
    "write_parquet",
    "read_provenance",
    "write_result_files",
    "write_results",
    "write_json",
]

MONTHLY_SUBSET_PATHS = 100_000
METADATA_KEY = b"mcsim"


class OutputExistsError(ScenarioError):
    """The output directory exists and `force` was not given."""


def check_target(target: str | Path, force: bool, flag: str = "--out") -> Path:
    """Raise `OutputExistsError` (one line) if `target` exists and `force` is False."""
    t = Path(target)
    if (t.exists() or t.is_symlink()) and not force:
        raise OutputExistsError(
            f'{flag}: "{t}" is not allowed (it already exists; choose another directory or pass --force to replace it)'
        )
    return t


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def staged_dir(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `target`; rename it to `target` on success.

    On any exception (KeyboardInterrupt included) the temporary directory is removed, and a parent
    directory created here is removed again if it is empty.
    """
    target = check_target(target, force)
    parent = target.parent if str(target.parent) else Path(".")
    created = []
    p = parent
    while not p.exists():
        created.append(p)
        p = p.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary directory
        yield tmp
        _commit(tmp, target, force)
    except BaseException:
        _remove(tmp)
        for c in created:
            with contextlib.suppress(OSError):
                c.rmdir()
        raise


def _commit(tmp: Path, target: Path, force: bool) -> None:
    if not (target.exists() or target.is_symlink()):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if not target.exists():
                raise
    check_target(target, force)
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def _versions() -> dict:
    import numba

    from . import __version__

    return {
        "mcsim": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
    }


def provenance(result, *, overrides: Iterable[str] = (), extra: dict | None = None) -> dict:
    """Where a result came from: versions, resolved scenario, seed, sizes, timings."""
    sc = result.scenario
    n_paths = int(getattr(result, "n_paths", 0) or 0)
    n_steps = int(getattr(result, "n_steps", 0) or sc.run.n_steps)
    wall = getattr(result, "wall_time", None)
    pss = getattr(result, "path_steps_per_second", None)
    if pss is None and wall:
        pss = n_paths * n_steps / wall
    out = {
        "mcsim_version": _versions()["mcsim"],
        "versions": _versions(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario_source": getattr(sc, "source", ""),
        "scenario_title": getattr(sc, "title", ""),
        "scenario": sc.to_dict(),
        "overrides": list(overrides),
        "seed": getattr(result, "seed", None),
        "n_paths": n_paths,
        "n_steps": n_steps,
        "steps_per_year": sc.run.steps_per_year,
        "horizon_years": sc.run.horizon_years,
        "chunk_paths": getattr(result, "chunk_paths", None),
        "block_paths": getattr(result, "block_paths", None),
        "wall_time_s": wall,
        "path_steps_per_second": pss,
        "strategies": list(getattr(result, "strategies", ()) or pd.unique(result.per_path["strategy"])),
    }
    if extra:
        out.update(extra)
    return json.loads(json.dumps(out, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_json(obj, path: str | Path) -> None:
    """Strict JSON (nan/inf are written as null by the caller's `to_jsonable`)."""
    from .metrics import to_jsonable

    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False, default=_json_default)
    Path(path).write_text(text + "\n", encoding="utf-8")


def write_parquet(df: pd.DataFrame, path: str | Path, meta: dict) -> None:
    """Write `df` with `meta` (JSON) under the schema metadata key `mcsim`."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[METADATA_KEY] = json.dumps(meta, default=_json_default).encode("utf-8")
    pq.write_table(table.replace_schema_metadata(md), path, compression="zstd")


def read_provenance(path: str | Path) -> dict:
    """The `mcsim` metadata of a Parquet file written by `write_parquet`."""
    md = pq.read_schema(path).metadata or {}
    return json.loads(md[METADATA_KEY])


def monthly_subset(monthly: pd.DataFrame, n_paths: int, limit: int = MONTHLY_SUBSET_PATHS) -> tuple[pd.DataFrame, dict]:
    """Monthly rows to write: all, or those of the `limit` lowest path indices above `limit` paths."""
    if n_paths <= limit:
        return monthly, {"monthly_paths": int(n_paths), "monthly_subset": "all paths"}
    keep = np.sort(pd.unique(monthly["path"]))[:limit]
    sub = monthly[monthly["path"].isin(keep)]
    return sub, {"monthly_paths": int(len(keep)),
                 "monthly_subset": f"the {len(keep)} lowest path indices of {n_paths}; summary.json uses all paths"}


def write_result_files(result, directory: str | Path, *, summary: dict | None = None,
                       overrides: Iterable[str] = (), plots: bool = True, extra: dict | None = None,
                       monthly_limit: int = MONTHLY_SUBSET_PATHS) -> list[str]:
    """Write summary.json, paths.parquet, monthly.parquet and the plots into `directory`.

    Returns the file names written. `summary` defaults to `metrics.summarize(result)`.
    """
    from . import metrics

    d = Path(directory)
    if summary is None:
        summary = metrics.summarize(result)
    n_paths = int(getattr(result, "n_paths", 0) or result.per_path["path"].nunique())
    mo, sub = monthly_subset(result.monthly, n_paths, monthly_limit)
    prov = provenance(result, overrides=overrides, extra={**(extra or {}), **sub})
    write_parquet(result.per_path, d / "paths.parquet", prov)
    write_parquet(mo, d / "monthly.parquet", prov)
    files = ["summary.json", "paths.parquet", "monthly.parquet"]
    if plots:
        from . import plots as _plots

        files += _plots.write_plots(result, d, summary=summary)
    write_json({"provenance": prov, "files": files, **summary}, d / "summary.json")
    return files


def write_results(result, out_dir: str | Path, *, force: bool = False, summary: dict | None = None,
                  overrides: Iterable[str] = (), plots: bool = True, extra: dict | None = None) -> Path:
    """All result files into `out_dir`, all-or-nothing (see the module docstring)."""
    with staged_dir(out_dir, force=force) as tmp:
        write_result_files(result, tmp, summary=summary, overrides=overrides, plots=plots, extra=extra)
    return Path(out_dir)
