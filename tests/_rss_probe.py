"""Subprocess helper of tests/test_memory.py: peak RSS of simulate + summarize vs the estimate.

Usage: python _rss_probe.py SCENARIO PATHS [KEY=VALUE ...]. Prints one JSON line: measured bytes
(peak RSS during simulate + summarize minus the RSS just before, after imports and compilation,
less the file-backed pages faulted in meanwhile; the peak is reset through /proc/self/clear_refs)
and the estimate.
"""

import gc
import json
import resource
import sys

import mcsim
from mcsim import memory, metrics
from mcsim.scenario import load_scenario


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    sc = load_scenario(path, sys.argv[3:])
    metrics.summarize(mcsim.simulate(sc, n_paths=64))     # imports, compilation, first-use caches
    metrics.summarize(mcsim.simulate(sc, n_paths=1100))   # two random-stream blocks
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                        # reset the peak (VmHWM, ru_maxrss)
    base, file0 = _status("VmRSS"), _status("RssFile")
    import time
    t0 = time.perf_counter()
    res = mcsim.simulate(sc, n_paths=n)
    metrics.summarize(res)
    wall = time.perf_counter() - t0
    peak = max(_status("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    # file-backed pages faulted (back) in meanwhile (libraries, numba's cache; many when other
    # processes press on memory) are not the run's allocations: not counted
    files = max(_status("RssFile") - file0, 0)
    est = memory.estimate_run_bytes(sc, n, summarize=True)
    print(json.dumps({"paths": n, "measured": peak - base - files, "file_pages": files, "estimate": est,
                      "seconds": round(wall, 2)}))


if __name__ == "__main__":
    main()
