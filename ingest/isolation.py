"""Isolating bad lines (parse -> store): one line must never stop a file.

A block that fails to parse, or a batch that fails to commit, for a reason tied to its lines is
split in halves until the failing lines are found. Those become `rejects` rows whose reason names
the error; everything else is parsed and stored as usual, and the file moves on. Splitting runs
only after a failure, so the common path costs nothing. Errors of the machine rather than the
data (I/O, memory, a locked database) are raised unchanged: retrying those is right.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import BinaryIO

import duckdb
import polars as pl

from conflictradar.ingest.blocks import RAW_LIMIT, Parsed, concat_parsed
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.errors import DatabaseLockedError
from conflictradar.ingest.lines import newline_positions, split_lines
from conflictradar.ingest.rows import AfterInsert, Batch, minute_rollup
from conflictradar.ingest.schema import empty
from conflictradar.ingest.store import Store

log = logging.getLogger("conflictradar.ingest")

SYSTEMIC: tuple[type[BaseException], ...] = (
    DatabaseLockedError, OSError, MemoryError, duckdb.IOException, duckdb.OutOfMemoryException,
)  # fmt: skip
# Trial commits one failing batch may cost before the failure is taken as not the rows' (about
# 2 log2(n) per bad line: a batch of 100k rows with 50 bad lines needs ~1,700).
MAX_TRIALS = 4000

ParseFn = Callable[[bytes | bytearray, int, int, bool, Sequence[tuple[int, int]], bool], Parsed]
RawOf = Callable[[pl.Series], pl.Series]  # line numbers -> their raw text


def systemic(exc: BaseException) -> bool:
    """Whether `exc` (or what it was translated from) is the machine's trouble, not the data's."""
    return isinstance(exc, SYSTEMIC) or isinstance(exc.__cause__, SYSTEMIC)


def sentence(exc: BaseException) -> str:
    """The first line of an error, named by its type (for reject reasons)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


# -- parsing -----------------------------------------------------------------------------------


def parse_isolated(parse: ParseFn, data: bytes | bytearray, start: int, first_line: int, unterminated: bool,
                   oversize: Sequence[tuple[int, int]], final: bool, path: str) -> Parsed:  # fmt: skip
    """`parse(...)`, or, if it raises, the block parsed in halves down to the lines that fail
    alone, which become rejects."""
    try:
        return parse(data, start, first_line, unterminated, oversize, final)
    except Exception as exc:
        if systemic(exc):
            raise
        error = exc
    ends = newline_positions(data)
    count = len(ends) + (0 if data.endswith(b"\n") else 1)
    if count <= 1:
        log.warning("line could not be parsed", extra={"path": path, "line": first_line,
                                                       "error": sentence(error)})  # fmt: skip
        return _rejected(data, start, first_line, unterminated, path, error)
    half = count // 2
    cut = int(ends[half - 1]) + 1
    left = parse_isolated(parse, data[:cut], start, first_line, False,
                          [(i, n) for i, n in oversize if i < half], True, path)  # fmt: skip
    right = parse_isolated(parse, data[cut:], start + cut, first_line + left.lines, unterminated,
                           [(i - half, n) for i, n in oversize if i >= half], final, path)  # fmt: skip
    return concat_parsed([left, right])


def _rejected(data: bytes | bytearray, start: int, line: int, unterminated: bool, path: str,
              error: BaseException) -> Parsed:  # fmt: skip
    requests = (
        empty()
        .with_columns(
            pl.lit(None, pl.Int64).alias("line"),
            pl.lit(None, pl.String).alias("file"),
            pl.lit(None, pl.String).alias("format"),
            pl.lit(None, pl.String).alias("endpoint"),
        )
        .select(REQUEST_COLUMNS)
    )
    text = bytes(data).decode("utf-8", errors="replace").rstrip("\n").removesuffix("\r")
    rejects = pl.DataFrame(
        {"file": [path], "line": [line], "reason": [f"could not be parsed: {sentence(error)}"],
         "raw": [text[:RAW_LIMIT]]},
        schema={"file": pl.String, "line": pl.Int64, "reason": pl.String, "raw": pl.String},
    )  # fmt: skip
    conflict_lines = pl.DataFrame(
        schema={"file": pl.String, "line": pl.Int64, "ts": requests.schema["ts"], "raw": pl.String}
    )
    return Parsed(requests, minute_rollup(requests), (), rejects, conflict_lines, 1, 0,
                  start + len(data), unterminated, start)  # fmt: skip


# -- committing --------------------------------------------------------------------------------


def commit_isolated(store: Store, batch: Batch, after: AfterInsert | None,
                    store_only: AfterInsert | None, raw_of: RawOf) -> tuple[Batch, bool]:  # fmt: skip
    """Commit `batch` with `after` (in its transaction); on a failure tied to its data, find out
    what fails and commit the rest. Returns the batch committed and whether its classification
    was deferred: when only `after` fails, the rows are stored with `store_only` instead (which
    marks their range pending; ingest.pending quarantines a range that keeps failing)."""
    try:
        store.commit_batch(batch, after)
        return batch, False
    except Exception as exc:
        if systemic(exc):
            raise
        first = exc
    deferred = after != store_only
    if deferred:
        try:
            store.commit_batch(batch, store_only)
            log.warning("classifying a batch failed; its range is left pending",
                        extra={"path": batch.file.path, "error": sentence(first)})  # fmt: skip
            return batch, True
        except Exception as exc:
            if systemic(exc):
                raise
    bare = replace(batch, requests=batch.requests.clear(),
                   conflict_lines=batch.conflict_lines.clear(), minutes=None)  # fmt: skip
    try:
        store.commit_batch(bare, store_only, rollback=True)
    except Exception:
        raise first from None  # the batch fails without any of its rows: not theirs
    bad = _bisect(store, batch, store_only)
    if not bad:
        raise first
    fixed = _without(batch, bad, raw_of)
    store.commit_batch(fixed, store_only)
    log.warning("lines could not be stored; rejected",
                extra={"path": batch.file.path, "lines": len(bad), "error": sentence(first)})  # fmt: skip
    return fixed, deferred


def _bisect(store: Store, batch: Batch, hook: AfterInsert | None) -> dict[int, str]:
    """Row index -> reason for every row of `batch.requests` that fails to commit alone; empty
    when the rows do not explain the failure (or the trial budget runs out)."""
    rows = batch.requests
    bad: dict[int, str] = {}
    todo = [(0, rows.height)]
    trials = 0
    while todo:
        a, b = todo.pop()
        trials += 1
        if trials > MAX_TRIALS:
            return {}
        sub = rows.slice(a, b - a)
        lines = batch.conflict_lines.filter(pl.col("line").is_in(sub["line"].implode()))
        trial = replace(batch, requests=sub, conflict_lines=lines, minutes=None,
                        rejects=batch.rejects.clear())  # fmt: skip
        try:
            store.commit_batch(trial, hook, rollback=True)
            continue
        except Exception as exc:
            if systemic(exc):
                raise
            reason = sentence(exc)
        if b - a == 1:
            bad[a] = reason
            continue
        mid = (a + b) // 2
        todo += [(mid, b), (a, mid)]
    return bad


def _without(batch: Batch, bad: dict[int, str], raw_of: RawOf) -> Batch:
    """`batch` with the rows at `bad` moved to its rejects."""
    index = pl.Series("i", sorted(bad), dtype=pl.UInt32)
    keep = ~pl.int_range(0, batch.requests.height, eager=True).is_in(index.implode())
    lines = batch.requests["line"].gather(index)
    rejects = pl.DataFrame(
        {
            "file": pl.Series([batch.file.path] * len(index), dtype=pl.String),
            "line": lines,
            "reason": pl.Series(
                [f"could not be stored: {bad[i]}" for i in sorted(bad)], dtype=pl.String
            ),
            "raw": raw_of(lines).str.slice(0, RAW_LIMIT),
        }
    )
    return replace(
        batch,
        requests=batch.requests.filter(keep),
        rejects=pl.concat(
            [batch.rejects.select("file", "line", "reason", "raw"), rejects], how="vertical_relaxed"
        ),
        conflict_lines=batch.conflict_lines.filter(~pl.col("line").is_in(lines.implode())),
        minutes=None,
    )


def raw_reader(opener: Callable[[], BinaryIO], start: int, end: int, first_line: int) -> RawOf:
    """Reads back the raw text of given line numbers of the block [start, end) that begins at
    `first_line` (only when a batch fails: the block's bytes are not kept)."""

    def raw_of(lines: pl.Series) -> pl.Series:
        with opener() as fh:
            fh.seek(start)
            text = split_lines(fh.read(end - start))
        index = (lines - first_line).cast(pl.Int64)
        ok = (index >= 0) & (index < text.len())
        picked = text.gather(index.filter(ok).cast(pl.UInt32))
        out = pl.Series("raw", [None] * lines.len(), dtype=pl.String)
        return out.scatter(ok.arg_true(), picked) if picked.len() else out

    return raw_of
