"""`python -m mcsim ...` is the same as the `mcsim` command."""

from .cli import main

raise SystemExit(main())
