"""Keep numba's on-disk cache honest across source changes.

numba keys a cached kernel on the stat of the file that defines it, not on the modules it calls:
after an upgrade or a `git pull` that changes only a helper module, a stale compiled kernel
would run silently. Before any kernel module is imported, this compares a digest of every
mcsim source file with the one recorded beside the cache and, when they differ, deletes mcsim's
cached kernels so that numba recompiles them.
"""

from __future__ import annotations

import hashlib
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
