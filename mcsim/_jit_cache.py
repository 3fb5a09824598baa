"""Keep numba's on-disk cache honest across source changes.

numba keys a cached kernel on the stat of the file that defines it, not on the modules it calls:
after an upgrade or a `git pull` that changes only a helper module, a stale compiled kernel
would run silently. Before any kernel module is imported, this compares a digest of every
mcsim source file with the one recorded beside the cache and, when they differ, deletes mcsim's
cached kernels so that numba recompiles them.

A read-only install (package directory and `$HOME` not writable) must still import: numba would
fail with "cannot cache function ...: no locator available". `ensure_writable_cache` then points
numba's cache at a writable directory of its own, named by the same digest (so a source change
gets a fresh cache), unless the user set NUMBA_CACHE_DIR.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_STAMP = _PACKAGE / "__pycache__" / "mcsim-jit-sources.sha256"


def source_digest() -> str:
    """SHA-256 over the relative path and bytes of every .py file of the package."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(_PACKAGE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def refresh() -> None:
    """Drop mcsim's cached numba kernels if any mcsim source changed since they were written."""
    try:
        digest = source_digest()
        if _STAMP.is_file() and _STAMP.read_text().strip() == digest:
            return
        for cached in list(_PACKAGE.rglob("__pycache__/*.nbi")) + list(_PACKAGE.rglob("__pycache__/*.nbc")):
            cached.unlink(missing_ok=True)
        _STAMP.parent.mkdir(exist_ok=True)
        _STAMP.write_text(digest + "\n")
    except OSError:
        # a read-only install: numba then caches elsewhere or not at all; nothing to refresh here
        pass


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=d).close()
        return True
    except OSError:
        return False


def ensure_writable_cache() -> str | None:
    """Give numba a writable cache directory when the package's own is not; return it (or None).

    Candidates in order: ~/.cache/mcsim/numba-DIGEST, then TMPDIR/mcsim-numba-UID/DIGEST. Older
    digests' directories beside the chosen one are removed. If none is writable, caching is
    switched off in this process (every numba function compiles anew) rather than failing.
    """
    import numba

    if numba.config.CACHE_DIR or _writable(_PACKAGE / "__pycache__"):
        return None
    digest = source_digest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    for parent in (Path.home() / ".cache" / "mcsim", Path(tempfile.gettempdir()) / f"mcsim-numba-{uid}"):
        d = parent / f"numba-{digest}"
        if _writable(d):
            for old in parent.glob("numba-*"):
                if old != d:
                    shutil.rmtree(old, ignore_errors=True)
            numba.config.CACHE_DIR = str(d)
            return str(d)
    _disable_caching(numba)
    return None


def _disable_caching(numba) -> None:
    """No writable place at all: make `cache=True` a no-op instead of an import error."""
    from numba.core.dispatcher import Dispatcher

    Dispatcher.enable_caching = lambda self: None
