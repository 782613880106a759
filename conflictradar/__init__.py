"""conflictradar: find, explain and alert on HTTP 409 Conflict responses in access logs."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

# numpy's OpenBLAS starts a thread per core that spins after start-up; nothing here does linear
# algebra (numpy only finds newlines), and the spinning took ~1% of a 2M-line ingest's CPU
# (perf: blas_thread_server). Set before numpy loads; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _version() -> str:
    try:
        return version("conflictradar")
    except PackageNotFoundError:  # a checkout on sys.path without an install
        return "0+unknown"


__version__ = _version()
