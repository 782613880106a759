"""`python -m conflictradar`: the same as the `conflictradar` command."""

from conflictradar.cli import main

raise SystemExit(main())
