"""Result files: summary.json, paths.parquet, monthly.parquet, plots, written all-or-nothing.

Everything goes into a temporary directory beside the target (`.NAME.tmp-XXXX`, carrying a
`.mcsim-staging` marker with the writer's pid) and is renamed into place at the end, so an
interrupted or failed run leaves no half-written result; what a killed run left behind is
removed by the next run into the same parent (`clean_stale`). A finished result directory carries
`.mcsim-result`, listing its files. An existing target is never replaced unless `force=True`, and
then only if it is such a result directory holding nothing else (`check_target`): a plain file,
a symlink, any other directory, `/`, the home or working directory are refused and left as they
are. A replace moves the old directory aside, renames the new one in and deletes the old one.

Both Parquet files carry the provenance (mcsim version, resolved scenario with overrides, seed,
paths, steps, block size, wall time, path-steps/s) as JSON under the schema metadata key `mcsim`.
`monthly.parquet` follows `MONTHLY_MODES` (`mcsim run --monthly`): "first" (default) holds the
rows of the lowest `MONTHLY_SUBSET_PATHS` (10,000) path indices only, stated in its metadata
(`monthly_paths`, `monthly_subset`); "all" every path, written chunk by chunk as Parquet row
groups (`MonthlyWriter`, rows in chunk order: within a chunk strategy, path, month) into the
staging directory; "none" writes no monthly.parquet. The summary uses every path whatever the mode.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ScenarioError
from .pathstore import StoredPaths

__all__ = [
    "MONTHLY_SUBSET_PATHS",
    "MONTHLY_MODES",
    "MonthlyWriter",
    "METADATA_KEY",
    "OutputExistsError",
    "OutputWriteError",
    "MARKER",
    "check_target",
    "clean_stale",
    "read_marker",
    "staged_dir",
    "provenance",
    "write_parquet",
    "read_provenance",
    "write_result_files",
    "write_results",
    "write_json",
    "replace_result_file",
    "write_text_file",
    "check_text_target",
]

MONTHLY_SUBSET_PATHS = 10_000
MONTHLY_MODES = ("first", "all", "none")
METADATA_KEY = b"mcsim"


class OutputExistsError(ScenarioError):
    """The output exists and `force` was not given, or `force` cannot replace it (not ours)."""


class OutputWriteError(OSError):
    """Writing a result failed (disk full, no permission): the message names the user's path."""


MARKER = ".mcsim-result"          # in every result directory mcsim wrote: what --force may replace
STAGING_MARKER = ".mcsim-staging"  # in a directory while mcsim writes it: pid and host of the writer
_MAGIC = "mcsim result directory"
_STALE = re.compile(r"^\..+\.(tmp|old)-[A-Za-z0-9_]+$")


def _refuse(flag: str, t: Path, why: str) -> OutputExistsError:
    return OutputExistsError(
        f'{flag}: "{t}" is not allowed with --force ({why}; --force replaces only a result directory '
        f"that mcsim wrote, marked by {MARKER}; choose another path)"
    )


def read_marker(d: Path) -> dict | None:
    """The marker of an mcsim result directory `d`, or None if `d` is not one."""
    m = Path(d) / MARKER
    try:
        if m.is_symlink() or not m.is_file():
            return None
        data = json.loads(m.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("mcsim") != _MAGIC or not isinstance(data.get("files"), list):
        return None
    return data


def _protected(t: Path) -> str | None:
    """Why `t` may never be replaced whatever it holds, or None."""
    try:
        r = t.resolve()
    except (OSError, RuntimeError):
        return "it cannot be resolved"
    cwd = Path.cwd().resolve()
    if r == Path(r.anchor):
        return "it is the root directory"
    if r == cwd or r in cwd.parents:
        return "it is the working directory or one of its parents"
    home = Path(os.path.expanduser("~"))
    with contextlib.suppress(OSError, RuntimeError):
        if r == home.resolve() or r in home.resolve().parents:
            return "it is the home directory or one of its parents"
    if os.path.ismount(r):
        return "it is a mount point"
    return None


def check_target(target: str | Path, force: bool, flag: str = "--out") -> Path:
    """Raise `OutputExistsError` (one line) unless `target` may be written.

    A missing target may always be written. An existing one needs `force`, and even then only an
    mcsim result directory qualifies: a real directory (not a symlink, not a mount point, not
    `/`, the home or the working directory) with a valid `.mcsim-result` marker, holding nothing
    but the files that marker lists. Anything else is refused and left untouched.
    """
    t = Path(target)
    if not (t.exists() or t.is_symlink()):
        return t
    if not force:
        raise OutputExistsError(
            f'{flag}: "{t}" is not allowed (it already exists; choose another directory or pass --force to replace it)'
        )
    if t.is_symlink():
        raise _refuse(flag, t, "it is a symbolic link")
    if not t.is_dir():
        raise _refuse(flag, t, "it is a file, not a directory")
    why = _protected(t)
    if why:
        raise _refuse(flag, t, why)
    marker = read_marker(t)
    if marker is None:
        raise _refuse(flag, t, f"it is not an mcsim result directory: no valid {MARKER}")
    allowed = set(marker["files"]) | {MARKER, STAGING_MARKER}
    try:
        foreign = sorted(e.name for e in os.scandir(t) if e.name not in allowed)
    except OSError as exc:
        raise _refuse(flag, t, f"it cannot be listed: {exc.strerror}") from None
    if foreign:
        raise _refuse(flag, t, f"it holds {len(foreign)} entries mcsim did not write, e.g. {foreign[0]!r}")
    return t


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _write_staging_marker(d: Path) -> None:
    info = {"mcsim": "staging", "pid": os.getpid(), "host": platform.node(),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    (d / STAGING_MARKER).write_text(json.dumps(info) + "\n", encoding="utf-8")


def _writer_alive(d: Path) -> bool | None:
    """Whether the process that staged `d` still runs (None: `d` was not staged by mcsim here)."""
    try:
        info = json.loads((d / STAGING_MARKER).read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), info["host"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if info.get("mcsim") != "staging" or host != platform.node():
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def clean_stale(parent: Path) -> list[str]:
    """Remove what killed mcsim runs left in `parent`; return the names removed or restored.

    Only directories named `.NAME.tmp-XXXX` / `.NAME.old-XXXX` that carry a staging marker of a
    process of this host that no longer runs qualify. A `.old-` directory is the previous result
    of a replace that was killed between its two renames: it is renamed back when `NAME` is
    missing, removed otherwise.
    """
    done: list[str] = []
    try:
        entries = [e for e in os.scandir(parent) if _STALE.match(e.name)]
    except OSError:
        return done
    for e in entries:
        d = Path(e.path)
        if d.is_symlink() or not d.is_dir() or _writer_alive(d) is not False:
            continue
        if ".old-" in e.name:
            name = e.name[1:e.name.rindex(".old-")]
            target = Path(parent) / name
            if not (target.exists() or target.is_symlink()) and read_marker(d) is not None:
                with contextlib.suppress(OSError):
                    os.rename(d, target)
                    (target / STAGING_MARKER).unlink(missing_ok=True)
                    done.append(name)
                    continue
        _remove(d)
        done.append(e.name)
    return done


def _write_error(target: Path, exc: OSError) -> OutputWriteError:
    why = exc.strerror or type(exc).__name__
    return OutputWriteError(f'cannot write "{target}" ({why}; errno {exc.errno})')


@contextlib.contextmanager
def staged_dir(target: str | Path, force: bool = False, flag: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary directory beside `target`; rename it to `target` on success.

    The directory carries a staging marker while it is written and `.mcsim-result` (listing its
    files) once complete. On any exception (KeyboardInterrupt included) the temporary directory
    is removed, and a parent directory created here is removed again if it is empty. An OSError
    while writing is raised as `OutputWriteError` naming `target`, never the temporary path.
    """
    target = check_target(target, force, flag)
    parent = target.parent if str(target.parent) else Path(".")
    created = []
    p = parent
    while not p.exists():
        created.append(p)
        p = p.parent
    tmp = None
    try:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            clean_stale(parent)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary directory
            _write_staging_marker(tmp)
        except OSError as exc:
            raise _write_error(target, exc) from None
        try:
            yield tmp
        except OSError as exc:
            if isinstance(exc, OutputWriteError):
                raise
            raise _write_error(target, exc) from None
        try:
            _commit(tmp, target, force, flag)
        except OSError as exc:
            raise _write_error(target, exc) from None
    except BaseException:
        if tmp is not None:
            _remove(tmp)
        for c in created:
            with contextlib.suppress(OSError):
                c.rmdir()
        raise


def _write_marker(tmp: Path) -> None:
    files = sorted(e.name for e in os.scandir(tmp) if e.name not in (MARKER, STAGING_MARKER))
    info = {"mcsim": _MAGIC, "mcsim_version": _versions()["mcsim"], "files": files,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    (tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def _commit(tmp: Path, target: Path, force: bool, flag: str) -> None:
    _write_marker(tmp)
    if not (target.exists() or target.is_symlink()):
        try:
            os.rename(tmp, target)
            (target / STAGING_MARKER).unlink(missing_ok=True)
            return
        except OSError:
            if not target.exists():
                raise
    check_target(target, force, flag)  # it appeared meanwhile: the same checks again
    _write_staging_marker(target)      # so a kill between the renames can be undone (clean_stale)
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        (target / STAGING_MARKER).unlink(missing_ok=True)
        raise
    (target / STAGING_MARKER).unlink(missing_ok=True)
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


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: all but the floating-point ones (whose values are
    nearly all distinct: the encoder would try, overflow its page and fall back, for nothing)."""
    return [f.name for f in schema if not pa.types.is_floating(f.type)]


def _metadata(meta: dict) -> dict:
    """`meta` as the Parquet schema metadata entry mcsim reads back (`read_provenance`)."""
    return {METADATA_KEY: json.dumps(meta, default=_json_default).encode("utf-8")}


def write_parquet(df: pd.DataFrame, path: str | Path, meta: dict) -> None:
    """Write `df` with `meta` (JSON) under the schema metadata key `mcsim`."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md.update(_metadata(meta))
    pq.write_table(table.replace_schema_metadata(md), path, compression="zstd",
                   use_dictionary=_dictionary_columns(table.schema))


def read_provenance(path: str | Path) -> dict:
    """The `mcsim` metadata of a Parquet file written by `write_parquet` or `MonthlyWriter` (the
    file's key-value metadata, else the Arrow schema's)."""
    kv = pq.ParquetFile(path).metadata.metadata or {}
    if METADATA_KEY in kv:
        return json.loads(kv[METADATA_KEY])
    md = pq.read_schema(path).metadata or {}
    return json.loads(md[METADATA_KEY])


class MonthlyWriter:
    """monthly.parquet written chunk by chunk (`simulate(monthly_sink=...)`): one row group per
    chunk, the provenance added as the file's key-value metadata on `close`. Used inside a
    staging directory, so a failed run leaves nothing."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.writer = None
        self.rows = 0
        self.paths = 0

    def __call__(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd",
                                           use_dictionary=_dictionary_columns(table.schema))
        self.writer.write_table(table)
        self.rows += len(df)
        self.paths += int(df["path"].nunique()) if len(df) else 0

    def close(self, meta: dict) -> None:
        if self.writer is None:
            return
        self.writer.add_key_value_metadata({METADATA_KEY: json.dumps(meta, default=_json_default).encode("utf-8")})
        self.writer.close()
        self.writer = None


def monthly_subset(monthly: pd.DataFrame, n_paths: int, limit: int = MONTHLY_SUBSET_PATHS,
                   kept: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Monthly rows to write: all, or those of the `limit` lowest path indices above `limit` paths.
    `kept`: how many paths' rows `monthly` holds (`Result.monthly_paths`), when it is already a
    subset."""
    if kept is not None and kept < n_paths and kept <= limit:
        return monthly, {"monthly_paths": int(kept),
                         "monthly_subset": f"the {kept} lowest path indices of {n_paths}; summary.json uses all paths"}
    if n_paths <= limit:
        return monthly, {"monthly_paths": int(n_paths), "monthly_subset": "all paths"}
    keep = np.sort(pd.unique(monthly["path"]))[:limit]
    sub = monthly[monthly["path"].isin(keep)]
    return sub, {"monthly_paths": int(len(keep)),
                 "monthly_subset": f"the {len(keep)} lowest path indices of {n_paths}; summary.json uses all paths"}


def write_result_files(result, directory: str | Path, *, summary: dict | None = None,
                       overrides: Iterable[str] = (), plots: bool = True, extra: dict | None = None,
                       monthly_limit: int = MONTHLY_SUBSET_PATHS, report: bool | None = None,
                       monthly: str = "first", monthly_writer: MonthlyWriter | None = None) -> list[str]:
    """Write summary.json, paths.parquet, monthly.parquet, the plots and report.html into `directory`.

    Returns the file names written. `summary` defaults to `metrics.summarize(result)`; `report`
    (report.html, mcsim/report.py) defaults to `plots`. `monthly` is one of `MONTHLY_MODES`; for
    "all", `monthly_writer` has written every chunk's rows into `directory`/monthly.parquet and
    is closed here with the provenance.
    """
    if monthly not in MONTHLY_MODES:
        raise ValueError(f'monthly: "{monthly}" is not allowed (must be one of {", ".join(MONTHLY_MODES)})')
    if report is None:
        report = plots
    from . import metrics

    d = Path(directory)
    if summary is None:
        summary = metrics.summarize(result)
    n_paths = int(getattr(result, "n_paths", 0) or result.per_path["path"].nunique())
    if monthly == "first":
        mo, sub = monthly_subset(result.monthly, n_paths, monthly_limit, getattr(result, "monthly_paths", None))
    elif monthly == "all":
        if monthly_writer is None:
            raise ValueError('monthly: "all" needs the monthly_writer that simulate fed')
        sub = {"monthly_paths": int(n_paths), "monthly_subset": "all paths, one row group per chunk"}
    else:
        sub = {"monthly_paths": 0, "monthly_subset": "none (--monthly none); summary.json uses all paths"}
    prov = provenance(result, overrides=overrides, extra={**(extra or {}), **sub})

    def tables():
        if isinstance(result.per_path, StoredPaths):     # a run's table on disk (mcsim.pathstore)
            result.per_path.write_parquet(d / "paths.parquet", _metadata(prov), _dictionary_columns)
        else:
            write_parquet(result.per_path, d / "paths.parquet", prov)
        if monthly == "first":
            write_parquet(mo, d / "monthly.parquet", prov)
        elif monthly == "all":
            monthly_writer.close(prov)

    files = ["summary.json", "paths.parquet"]
    if monthly != "none":
        files.append("monthly.parquet")
    # the Parquet files are encoded and compressed by Arrow without the GIL: written on a second
    # thread while matplotlib draws the plots on this one and (plots.start_plots) in a forked
    # child, which is started first, while this process has no other thread
    job = None
    if plots:
        from . import plots as _plots

        job = _plots.start_plots(result, d, summary=summary)
    try:
        with ThreadPoolExecutor(1) as pool:
            written = pool.submit(tables)
            try:
                if job is not None:
                    files += job.finish()
            except BaseException:
                written.exception()     # wait for the writer; the plot's error is the one raised
                raise
            written.result()
    finally:
        if job is not None:
            job.abort()     # a child still drawing when something failed: stopped before the staging is removed
    if report:
        files.append("report.html")
    write_json({"provenance": prov, "files": files, **summary}, d / "summary.json")
    if report:
        from .report import write_report

        write_report(d, result=result)
    return files


def replace_result_file(directory: str | Path, name: str, data: bytes) -> Path:
    """Write (or replace) the file `name` inside an existing mcsim result directory, atomically.

    The directory must be a real directory (not a symbolic link) with a valid marker. The file is
    written into a staging directory beside it (removed by `clean_stale` if this process is
    killed), the marker is rewritten to list it first, then the file is renamed into place: at no
    moment does the directory hold a file its marker does not list. Raises `OutputExistsError`
    (one line) for anything else.
    """
    d = Path(directory)
    if not d.is_dir() or d.is_symlink() or read_marker(d) is None:
        raise OutputExistsError(f'result directory: "{d}" is not allowed (must be a directory written by mcsim, '
                                f"marked by {MARKER})")
    if "/" in name or name in (MARKER, STAGING_MARKER) or name.startswith("."):
        raise ValueError(f"replace_result_file: {name!r} is not a result file name")
    try:
        clean_stale(d.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.tmp-", dir=d.parent))
    except OSError as exc:
        raise _write_error(d, exc) from None
    try:
        _write_staging_marker(tmp)
        (tmp / name).write_bytes(data)
        marker = read_marker(d)
        files = sorted(set(marker["files"]) | {name})
        marker.update(files=files)
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp / MARKER, d / MARKER)
        os.replace(tmp / name, d / name)
    except OSError as exc:
        raise _write_error(d, exc) from None
    finally:
        _remove(tmp)
    return d / name


def write_results(result, out_dir: str | Path, *, force: bool = False, summary: dict | None = None,
                  overrides: Iterable[str] = (), plots: bool = True, extra: dict | None = None,
                  report: bool | None = None) -> Path:
    """All result files into `out_dir`, all-or-nothing (see the module docstring)."""
    with staged_dir(out_dir, force=force) as tmp:
        write_result_files(result, tmp, summary=summary, overrides=overrides, plots=plots, extra=extra,
                           report=report)
    return Path(out_dir)


# --------------------------------------------------------------------------------------------
# single text files (mcsim calibrate's scenario files)


_OWNER_LINES = 3   # the owner mark sits on one of a written file's first lines


def check_text_target(target: str | Path, force: bool, owner_mark: str, flag: str = "--out") -> Path:
    """Raise `OutputExistsError` unless `write_text_file` may write `target`."""
    t = Path(target)
    exists = t.exists() or t.is_symlink()
    if exists:
        if not force:
            raise OutputExistsError(f'{flag}: "{t}" is not allowed (it already exists; choose another file '
                                    "or pass --force to replace it)")
        if t.is_symlink() or not t.is_file():
            raise OutputExistsError(f'{flag}: "{t}" is not allowed with --force (it is not a regular file; '
                                    "--force replaces only a file mcsim wrote)")
        try:
            with open(t, encoding="utf-8") as f:
                head = [f.readline() for _ in range(_OWNER_LINES)]
        except (OSError, UnicodeDecodeError):
            head = []
        if not any(line.startswith(owner_mark) for line in head):
            raise OutputExistsError(f'{flag}: "{t}" is not allowed with --force (mcsim did not write it: none of '
                                    f'its first {_OWNER_LINES} lines starts with "{owner_mark}")')
    return t


def write_text_file(target: str | Path, text: str, *, force: bool = False, owner_mark: str,
                    flag: str = "--out") -> Path:
    """Write `text` to `target` atomically, never clobbering what mcsim did not write.

    The text goes to a temporary file beside `target` and is linked into place (creation fails
    if `target` appeared meanwhile). An existing `target` is replaced only with `force`, and only
    when it is a regular file (not a symlink) with a line starting with `owner_mark` among its
    first 3 (the mark mcsim wrote into it); anything else is refused with one line
    (`OutputExistsError`).
    """
    t = check_text_target(target, force, owner_mark, flag)
    exists = t.exists() or t.is_symlink()
    parent = t.parent if str(t.parent) else Path(".")
    if not parent.is_dir():
        raise OutputWriteError(f'cannot write "{t}" (its directory does not exist)')
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{t.name}.tmp-", dir=parent)
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if exists:
            os.replace(tmp, t)
        else:
            os.link(tmp, t)     # fails if the target appeared meanwhile: never clobbered
            tmp.unlink()
        tmp = None
    except FileExistsError:
        raise OutputExistsError(f'{flag}: "{t}" is not allowed (it appeared while writing; choose another file)') from None
    except OSError as exc:
        raise _write_error(t, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return t
