"""The Dask engine: each chunk of paths is one Dask task, folded back in path order.

`engine.simulate(..., engine="dask")` ships `engine.run_chunk_task` with the run's
`engine.ChunkSpec` (scenario, kernel parameters, the market generator's parameters) to the
workers, one task per chunk, and folds the returned `engine.ChunkOut`s strictly in path order,
exactly as the local loop does: the same function on the same inputs, so the same bits (on one
machine type: numba compiles for the CPU it runs on). At most `INFLIGHT_PER_THREAD` chunks per
worker thread are submitted or waiting to be folded at once, so the client's memory stays
bounded whatever the number of chunks. A task whose worker dies is re-run by Dask elsewhere
(and `retries` more times if it raises); a re-run is the same pure function, so the result
does not change.

`distributed` (``pip install 'mcsim[dask]'``) is imported only here, only when asked for.
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Callable

__all__ = ["MISSING", "DaskUnavailableError", "require", "connect", "run_chunks"]

MISSING = "engine: dask needs the optional extra: pip install 'mcsim[dask]'"
INFLIGHT_PER_THREAD = 2     # chunks submitted or awaiting their fold, per worker thread
RETRIES = 2                 # re-runs of a task that raised (a lost worker is re-run by Dask anyway)
CONNECT_TIMEOUT = "20s"     # how long to wait for a scheduler address to answer


class DaskUnavailableError(ImportError):
    """engine="dask" without the optional `dask[distributed]` packages."""


def require():
    """The `distributed` module, or `DaskUnavailableError` saying what to install."""
    try:
        import distributed
    except ImportError:
        raise DaskUnavailableError(MISSING) from None
    return distributed


def local_workers() -> int:
    """Worker processes of a default `LocalCluster`: numba's thread count (the CPUs)."""
    from .market import resolve_threads

    return resolve_threads(None)


@contextlib.contextmanager
def connect(scheduler=None, n_workers: int | None = None):
    """A `distributed.Client`: `scheduler` itself if it is one, a connection to its address
    (``tcp://host:8786``), or a new `LocalCluster` of `n_workers` single-threaded worker
    processes (default: one per CPU) when it is None. What this opened is closed on exit.

    An address that does not answer within CONNECT_TIMEOUT raises OSError naming it.
    """
    distributed = require()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler is None:
        with distributed.LocalCluster(n_workers=n_workers or local_workers(), threads_per_worker=1,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler: {scheduler!r} is not allowed (must be a Dask scheduler address such as "
                         "tcp://host:8786, or a distributed.Client)")
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"scheduler: cannot connect to the Dask scheduler at {scheduler} "
                      f"({type(exc).__name__}: {exc})") from None
    except ValueError as exc:   # an address Dask cannot parse
        raise ValueError(f"scheduler: {scheduler!r} is not allowed (must be a Dask scheduler address such as "
                         f"tcp://host:8786: {exc})") from None
    with client:
        yield client


def _threads(client) -> int:
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def run_chunks(spec, seed: int, n_paths: int, chunk: int, threads: int, with_rows: bool,
               fold: Callable, scheduler=None) -> None:
    """Run chunks [0, chunk), [chunk, 2 chunk), ... of `n_paths` paths as Dask tasks and call
    `fold(ChunkOut)` for each, strictly in path order (out-of-order results wait, bounded).

    `threads` is the number of threads inside each task; `with_rows` asks each task for its
    chunk's monthly DataFrame (`--monthly all`). Keys are `mcsim-chunk-<run token>-<first path>`,
    the token a hash of the run's inputs: the same run gives the same keys.
    """
    from dask.base import tokenize

    from .engine import run_chunk_task

    starts = list(range(0, n_paths, chunk))
    token = tokenize(pickle.dumps(spec, protocol=5), seed, chunk, threads, with_rows)
    with connect(scheduler) as client:
        import distributed

        limit = INFLIGHT_PER_THREAD * _threads(client)
        waiting = distributed.as_completed()
        index: dict[str, int] = {}
        done: dict[int, object] = {}
        futures: dict[int, object] = {}
        submitted = folded = 0

        def submit_more():
            nonlocal submitted
            while submitted < len(starts) and submitted - folded < limit:
                first = starts[submitted]
                fut = client.submit(run_chunk_task, spec, seed, first, min(chunk, n_paths - first), threads,
                                    with_rows, key=f"mcsim-chunk-{token}-{first}", pure=False, retries=RETRIES)
                index[fut.key] = submitted
                futures[submitted] = fut
                waiting.add(fut)
                submitted += 1

        try:
            submit_more()
            for fut in waiting:
                i = index.pop(fut.key)
                done[i] = fut.result()      # a task's own exception is raised here
                futures.pop(i).release()
                while folded in done:
                    fold(done.pop(folded))
                    folded += 1
                submit_more()
        finally:
            if futures:   # an error or an interrupt: drop what is still queued
                client.cancel(list(futures.values()))
    if folded != len(starts):   # pragma: no cover - as_completed yields every future once
        raise RuntimeError(f"engine: dask folded {folded} of {len(starts)} chunks")

