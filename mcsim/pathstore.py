"""The per-path table on disk: what lets a run of millions of paths stay in bounded memory.

`simulate(..., path_store=DIR)` writes every chunk's per-path rows (the `per_path` columns, and
the per-path part of each strategy's `streaming.MonthlyStats`) into DIR as they are folded, one
raw file per column holding the rows strategy-major (`[strategy][path]`, native byte order), and
returns a Result whose `per_path` is a `StoredPaths`: a strategy's column is read from disk
when a metric, a plot or the Parquet writer asks for it, so memory holds one column of one
strategy at a time (8 bytes x paths), never the table. `StoredPaths.to_frame()` loads it whole,
the same DataFrame (same bits, same row order) `simulate` returns without a store.
`mcsim run` always uses a store inside its staging directory and removes it before the
result directory is committed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ColumnStore", "StoredPaths", "StrategyRows", "StoredColumns", "strategy_groups"]

PARQUET_ROWS = 1 << 18   # rows per row group when paths.parquet is written from a store


class ColumnStore:
    """Fixed-size columns of n_strategies x n_paths rows in one directory, written by slices.

    `write(name, s, first, values)` puts values at rows [first, first + len) of strategy s
    (positioned writes: chunks may come in any order, though the engine folds in path order);
    `read(name, s)` returns strategy s's whole column. A column's dtype is fixed by its first
    write. Nothing is cached in memory.
    """

    def __init__(self, directory: str | Path, n_strategies: int, n_paths: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=False)
        self.n_strategies = int(n_strategies)
        self.n_paths = int(n_paths)
        self.dtypes: dict[str, np.dtype] = {}
        self._fds: dict[str, int] = {}

    def _fd(self, name: str, dtype: np.dtype) -> int:
        fd = self._fds.get(name)
        if fd is None:
            path = self.dir / f"{len(self._fds):03d}.bin"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(fd, self.n_strategies * self.n_paths * dtype.itemsize)
            self._fds[name] = fd
            self.dtypes[name] = dtype
        elif self.dtypes[name] != dtype:
            raise TypeError(f"ColumnStore: column {name!r} is {self.dtypes[name]}, got {dtype}")
        return fd

    def write(self, name: str, s: int, first: int, values: np.ndarray) -> None:
        v = np.ascontiguousarray(values)
        dt = v.dtype
        if v.ndim != 1 or first < 0 or first + len(v) > self.n_paths or not 0 <= s < self.n_strategies:
            raise ValueError(f"ColumnStore.write: rows [{first}, {first + len(v)}) of strategy {s} "
                             f"outside {self.n_strategies} x {self.n_paths}")
        fd = self._fd(name, dt)
        offset = (s * self.n_paths + first) * dt.itemsize
        view = memoryview(v).cast("B")
        while len(view):
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n

    def read(self, name: str, s: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Rows [lo, hi) (default: all) of strategy s's column `name` (a new array)."""
        dt = self.dtypes[name]
        hi = self.n_paths if hi is None else hi
        out = np.empty(hi - lo, dtype=dt)
        buf = memoryview(out).cast("B")
        offset = (s * self.n_paths + lo) * dt.itemsize
        fd = self._fds[name]
        while len(buf):
            n = os.preadv(fd, [buf], offset)
            if n <= 0:
                raise OSError(f"ColumnStore: short read of column {name!r}")
            buf, offset = buf[n:], offset + n
        return out

    def __contains__(self, name: str) -> bool:
        return name in self.dtypes

    def close(self) -> None:
        """Close the files and remove the directory (the columns are gone afterwards)."""
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class StrategyRows:
    """One strategy's rows of a `StoredPaths`: `rows[col]` is a pandas Series read from disk,
    `rows[[c1, c2]]` a DataFrame; `len`, `in` and `columns` as on a DataFrame."""

    def __init__(self, table: "StoredPaths", s: int):
        self._t = table
        self._s = s
        self.columns = list(table.columns)

    def __len__(self) -> int:
        return self._t.n_paths

    def __contains__(self, col) -> bool:
        return col in self._t.columns

    def __getitem__(self, key):
        if isinstance(key, str):
            return pd.Series(self._t.values(key, self._s), name=key, copy=False)
        return pd.DataFrame({k: self._t.values(k, self._s) for k in key}, copy=False)


class StoredPaths:
    """`Result.per_path` of a run with a path store: the table's rows are on disk.

    Per strategy (`rows(name)` / `groups()`) it reads like a DataFrame of one strategy; the
    whole table loads with `to_frame()`; `write_parquet` streams it into one Parquet file,
    strategy-major like the in-memory table, in row groups of PARQUET_ROWS rows.
    """

    def __init__(self, store: ColumnStore, strategies: tuple[str, ...], columns: tuple[str, ...],
                 first_path: int, codes_dtype):
        self.store = store
        self.strategies = tuple(strategies)
        self.columns = tuple(columns)
        self.n_paths = store.n_paths
        self.first_path = int(first_path)
        self._codes_dtype = codes_dtype

    def __len__(self) -> int:
        return len(self.strategies) * self.n_paths

    def _strategy_column(self) -> pd.Categorical:
        """The `strategy` column of the whole table (strategy-major)."""
        return pd.Categorical.from_codes(
            np.repeat(np.arange(len(self.strategies), dtype=self._codes_dtype), self.n_paths),
            categories=list(self.strategies))

    @property
    def dtypes(self) -> pd.Series:
        out = {}
        for c in self.columns:
            if c == "strategy":
                out[c] = pd.CategoricalDtype(list(self.strategies))
            elif c == "path":
                out[c] = np.dtype(np.int64)
            else:
                out[c] = self.store.dtypes[c]
        return pd.Series(out, dtype=object)

    def values(self, col: str, s: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Rows [lo, hi) of strategy index s in column `col`, as a numpy array (or Categorical)."""
        hi = self.n_paths if hi is None else hi
        if col == "path":
            return np.arange(self.first_path + lo, self.first_path + hi, dtype=np.int64)
        if col == "strategy":
            return pd.Categorical.from_codes(np.full(hi - lo, s, dtype=self._codes_dtype),
                                             categories=list(self.strategies))
        return self.store.read(col, s, lo, hi)

    def rows(self, strategy: str) -> StrategyRows:
        return StrategyRows(self, self.strategies.index(strategy))

    def groups(self) -> dict:
        """{strategy: its StrategyRows}, like `strategy_groups` of a DataFrame."""
        return {name: StrategyRows(self, s) for s, name in enumerate(self.strategies)}

    def frame(self, s: int, lo: int = 0, hi: int | None = None) -> pd.DataFrame:
        """Rows [lo, hi) of strategy index s, every column (a DataFrame)."""
        return pd.DataFrame({c: self.values(c, s, lo, hi) for c in self.columns}, copy=False)

    def to_frame(self) -> pd.DataFrame:
        """The whole table in memory: the DataFrame `simulate` returns without a store."""
        parts = [self.frame(s) for s in range(len(self.strategies))]
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(self.columns))
        df["strategy"] = self._strategy_column()   # concat may widen the codes' dtype
        return df

    def __getitem__(self, col: str) -> pd.Series:
        """One column over every strategy (strategy-major), as `DataFrame[col]` gives it."""
        if not isinstance(col, str):
            raise TypeError("StoredPaths[...] takes one column name; use rows(strategy) or to_frame()")
        if col == "strategy":
            return pd.Series(self._strategy_column(), name=col)
        return pd.Series(np.concatenate([self.values(col, s) for s in range(len(self.strategies))])
                         if self.strategies else np.zeros(0), name=col, copy=False)

    def write_parquet(self, path: str | Path, meta_bytes: dict, dictionary_columns) -> None:
        """Stream the table into one Parquet file (`io.write_parquet`'s encoding and metadata)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        try:
            for s in range(len(self.strategies)):
                for lo in range(0, max(self.n_paths, 1), PARQUET_ROWS):
                    hi = min(self.n_paths, lo + PARQUET_ROWS)
                    table = pa.Table.from_pandas(self.frame(s, lo, hi), preserve_index=False)
                    if writer is None:
                        schema = table.schema.with_metadata({**(table.schema.metadata or {}), **meta_bytes})
                        writer = pq.ParquetWriter(path, schema, compression="zstd",
                                                  use_dictionary=dictionary_columns(schema))
                    writer.write_table(table.replace_schema_metadata(writer.schema.metadata))
        finally:
            if writer is not None:
                writer.close()

    def close(self) -> None:
        """Remove the store from disk (the table is unreadable afterwards)."""
        self.store.close()


class StoredColumns(Mapping):
    """A read-only mapping key -> one strategy's per-path array in a `ColumnStore` (what a
    `streaming.MonthlyStats` of a stored run holds in its per-path dicts)."""

    def __init__(self, store: ColumnStore, prefix: str, s: int, keys):
        self._store, self._prefix, self._s, self._keys = store, prefix, s, tuple(keys)

    def __getitem__(self, k):
        if k not in self._keys:
            raise KeyError(k)
        return self._store.read(self._prefix + k, self._s)

    def __iter__(self):
        return iter(self._keys)

    def __contains__(self, k) -> bool:
        return k in self._keys

    def __len__(self) -> int:
        return len(self._keys)


def strategy_groups(df) -> dict:
    """{strategy: its rows}, as `df.groupby("strategy", sort=False)` gives them; when every
    category of a categorical column holds one contiguous run of rows (the engine's tables,
    strategy-major), the groups are row slices (views) instead of copies of every column. A
    `pathstore.StoredPaths` (a run's table on disk) gives its per-strategy readers."""
    if isinstance(df, StoredPaths):
        return df.groups()
    col = df["strategy"] if "strategy" in df.columns else None
    if col is not None and isinstance(col.dtype, pd.CategoricalDtype) and len(col):
        codes = col.cat.codes.to_numpy()
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        run_codes = codes[starts]
        cats = col.cat.categories
        if (len(np.unique(run_codes)) == len(starts) == len(cats)) and run_codes.min() >= 0:
            ends = np.r_[starts[1:], len(codes)]
            return {cats[c]: df.iloc[a:b] for c, a, b in zip(run_codes.tolist(), starts.tolist(), ends.tolist())}
    return {k: g for k, g in df.groupby("strategy", sort=False)}
