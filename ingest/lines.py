"""Bytes -> lines: split a block at newlines without copying, decode UTF-8, keep bad bytes visible.

Splitting uses numpy over the block and builds an Arrow array on the same buffer; decoding is one
vectorized cast. A block that is not valid UTF-8 (rare) is re-encoded with U+FFFD for the bad
bytes first, so its lines can still be parsed or rejected with their content.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

_CHUNK = 1 << 22  # scan for newlines in 4 MiB pieces: stays in cache, ~10x faster than one pass


def newline_positions(data: bytes | bytearray) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    parts = [np.flatnonzero(buf[i : i + _CHUNK] == 10) + i for i in range(0, len(buf), _CHUNK)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def split_lines(data: bytes | bytearray, nl: np.ndarray | None = None) -> pl.Series:
    """Decoded lines of `data` (a final line without newline included), without `\\n` / `\\r\\n`.

    `nl`: the newline positions of `data`, when the caller has them already.
    """
    if not data:
        return pl.Series("text", [], dtype=pl.String)
    try:
        text = _as_text(data, newline_positions(data) if nl is None else nl)
    except pl.exceptions.ComputeError:
        # Rare: invalid UTF-8. Re-encode with U+FFFD for the bad bytes; newlines are never part
        # of an invalid sequence, so the lines stay the same lines.
        fixed = data.decode("utf-8", errors="replace").encode("utf-8")
        text = _as_text(fixed, newline_positions(fixed))
    text = text.str.strip_suffix("\n")
    if b"\r" in data:
        text = text.str.strip_suffix("\r")
    return text.alias("text")


def _as_text(data: bytes | bytearray, nl: np.ndarray) -> pl.Series:
    """One Arrow array over `data` itself (no copy of the bytes), validated as UTF-8 by polars."""
    ends = nl if data.endswith(b"\n") else np.append(nl, len(data) - 1)
    count = len(ends)
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return pl.Series("raw", raw).cast(pl.String)
