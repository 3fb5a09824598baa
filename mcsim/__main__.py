"""`python -m mcsim ...` is the same as the `mcsim` command."""

from .cli import main

if __name__ == "__main__":   # a spawned Dask worker re-imports __main__: run nothing then
    raise SystemExit(main())
