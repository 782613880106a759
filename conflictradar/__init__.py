"""conflictradar: find, explain and alert on HTTP 409 Conflict responses in access logs."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

# Process settings that native libraries read once, when they load: every module of the tool
# (conflictradar.ingest, .alerts, .dashboard, the CLI) loads this package first.
#
# numpy's OpenBLAS starts a thread per core that spins after start-up; nothing here does linear
# algebra (numpy only finds newlines), and the spinning took ~1% of a 2M-line ingest's CPU
# (perf: blas_thread_server). Set before numpy loads; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Polars allocates through its own jemalloc, which it sets to hand freed pages back to the
# kernel after 0.5-1 s (`dirty_decay_ms:500,muzzy_decay_ms:1000` in polars/__init__.py, which
# appends this variable as the user's override). Between two 32 MB blocks that is long enough
# for the pages to go, and parsing the next block touches them afresh: one fault per 4 KB.
# Keeping them 30 s (jemalloc's background thread still returns them when idle) cut a 2M-line
# ingest's page faults from ~340k to ~265k and its time by ~8%, for ~200 MB more peak RSS
# (measured: bench.run_ingest, 4 runs each). It must be set before polars loads: every module
# of the tool loads this package first. A value set by the user wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:30000,muzzy_decay_ms:30000")


def _version() -> str:
    try:
        return version("conflictradar")
    except PackageNotFoundError:  # a checkout on sys.path without an install
        return "0+unknown"


__version__ = _version()
