"""Cached numba kernels are dropped when any mcsim source changes (numba only watches one file)."""

from mcsim import _jit_cache


def test_refresh_drops_cached_kernels_only_when_sources_change(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(_jit_cache, "_PACKAGE", pkg)
    monkeypatch.setattr(_jit_cache, "_STAMP", pkg / "__pycache__" / "stamp")
    kernel = pkg / "sub" / "__pycache__" / "b.kernel-1.py311.nbi"

    kernel.write_text("old")
    _jit_cache.refresh()                       # no stamp yet: caches of unknown origin go
    assert not kernel.exists()

    kernel.write_text("fresh")
    _jit_cache.refresh()                       # nothing changed: the cache stays
    assert kernel.exists()

    (pkg / "a.py").write_text("x = 3\n")       # a helper module changed
    _jit_cache.refresh()
    assert not kernel.exists()
    assert (pkg / "__pycache__" / "stamp").read_text().strip() == _jit_cache.source_digest()
