"""Log files -> DuckDB: formats, parsing, the store, classification and the read side."""

import os

# Polars allocates through its own jemalloc, which it sets to hand freed pages back to the
# kernel after 0.5-1 s (`dirty_decay_ms:500,muzzy_decay_ms:1000` in polars/__init__.py, which
# appends this variable as the user's override). Between two 32 MB blocks that is long enough
# for the pages to go, and parsing the next block touches them afresh: one fault per 4 KB.
# Keeping them 30 s (jemalloc's background thread still returns them when idle) cut a 2M-line
# ingest's page faults from ~340k to ~265k and its time by ~8%, for ~200 MB more peak RSS
# (measured: bench.run_ingest, 4 runs each). It must be set before polars loads: every module
# here imports polars after this package's __init__. A value set by the user wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:30000,muzzy_decay_ms:30000")
