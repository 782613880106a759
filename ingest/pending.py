"""Pending classification ranges (store -> classify): merge, explain, and quarantine the failing.

One-shot ingest records each batch's time range in `classify_pending` and explains them in bulk.
A range whose classification fails for a reason tied to its rows (a value the rule SQL cannot
handle) must not block every later run: the range is split in halves by time until the failing
pieces are at most MIN_WIDTH wide; those go to `classify_quarantine` with the error as reason and
the rest is classified. The SQL is deterministic over the same rows, so a piece that failed alone
after failing as part of the whole would fail again next run: it is set aside at once. Errors of
the machine rather than the rows (I/O, a lock) are raised, and the ranges stay pending. Running
out of memory is the size of the work, not its rows: a watcher under its memory limit (`[watch]
memory_limit`) that starts on a backlog of hours explains it in halves by time, as small as it
takes (a piece of MIN_WIDTH that still does not fit is an error that says which limit to raise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb

from conflictradar.ingest.errors import DatabaseError
from conflictradar.ingest.timestamps import earlier, later

log = logging.getLogger("conflictradar.ingest")

MIN_WIDTH = timedelta(seconds=1)
# Whole ranges this many pieces apart give up splitting (bounds the work for a range that fails
# everywhere: it is quarantined in at most this many pieces).
MAX_PIECES = 64
SYSTEMIC = (duckdb.IOException, duckdb.OutOfMemoryException, MemoryError, OSError)
MEMORY = (duckdb.OutOfMemoryException, MemoryError)

ClassifyRange = Callable[[duckdb.DuckDBPyConnection, datetime, datetime], None]


def pending_ranges(con: duckdb.DuckDBPyConnection, reach: timedelta) -> list[list[datetime]]:
    """The recorded ranges, merged where they overlap or lie within `reach` of each other.

    Times are held within Python's datetime range on the way out, so a range written by an
    older version (a year like -2025 or 99999) can still be read, classified and cleared."""
    rows = con.execute(
        "SELECT greatest(least(lo, $top), $bottom), greatest(least(hi, $top), $bottom)"
        " FROM classify_pending ORDER BY lo",
        {"top": datetime.max.replace(tzinfo=UTC), "bottom": datetime(1, 1, 2, tzinfo=UTC)},
    ).fetchall()
    merged: list[list[datetime]] = []
    for lo, hi in rows:
        if merged and lo <= later(merged[-1][1], reach):
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def classify_pending(con: duckdb.DuckDBPyConnection, classify_range: ClassifyRange,
                     window: timedelta, reach: timedelta | None = None) -> int:  # fmt: skip
    """Classify every pending range (merged within `reach`, default `window`: how far the
    rules look back) and clear them; returns how many merged ranges there were.

    All in one transaction when nothing fails (the common case); otherwise range by range, each
    in its own transaction, the failing ones bisected and quarantined."""
    ranges = pending_ranges(con, reach or window)
    if not ranges:
        return 0

    def every_range() -> None:
        for lo, hi in ranges:
            classify_range(con, lo, hi)
        con.execute("DELETE FROM classify_pending")

    try:
        _in_transaction(con, every_range)
        return len(ranges)
    except MEMORY as exc:
        log.info("classifying in pieces: the pending ranges need more memory than allowed at once",
                 extra={"error": _sentence(exc)})  # fmt: skip
    except SYSTEMIC:
        raise
    except Exception as exc:
        log.warning("classification failed; isolating the failing ranges",
                    extra={"error": _sentence(exc)})  # fmt: skip
    quarantined: list[tuple[datetime, datetime, str]] = []
    for lo, hi in ranges:
        # Pieces are ranges of 409 times: classify_range(a, b - window) explains exactly the
        # 409s in [a, b], so pieces do not overlap and a bad row fails one piece only.
        quarantined += _isolate(con, classify_range, window, lo, later(hi, window))
    _clear(con, quarantined)
    for lo, hi, reason in quarantined:
        log.error("classification range quarantined",
                  extra={"lo": lo.isoformat(), "hi": hi.isoformat(), "reason": reason})  # fmt: skip
    return len(ranges)


def _isolate(con: duckdb.DuckDBPyConnection, classify_range: ClassifyRange, window: timedelta,
             lo: datetime, hi: datetime) -> list[tuple[datetime, datetime, str]]:  # fmt: skip
    """Explain the 409s in [lo, hi] in pieces, halving those too large for the memory allowed;
    the failing pieces (at most MIN_WIDTH wide, or wider once MAX_PIECES are failing) with their
    reasons."""
    failed: list[tuple[datetime, datetime, str]] = []
    todo = [(lo, hi)]
    while todo:
        a, b = todo.pop()
        try:
            _in_transaction(con, lambda a=a, b=b: classify_range(con, a, earlier(b, window)))  # type: ignore[misc]
            continue
        except MEMORY as exc:
            _release(con)
            if b - a <= MIN_WIDTH:
                raise DatabaseError(
                    f"explaining the 409s of {a.isoformat()} to {b.isoformat()} needs more memory"
                    " than DuckDB may use here (`[watch] memory_limit` for the watcher): raise it"
                    f" ({_sentence(exc)})"
                ) from exc
            reason = ""
        except SYSTEMIC:
            raise
        except Exception as exc:
            reason = _sentence(exc)
        if reason and (b - a <= MIN_WIDTH or len(failed) + len(todo) >= MAX_PIECES):
            failed.append((a, b, reason))
            continue
        mid = a + (b - a) / 2
        # Later half first on the stack's bottom, so pieces are tried in time order.
        todo += [(mid, b), (a, mid)]
    return failed


def _release(con: duckdb.DuckDBPyConnection) -> None:
    """Write what is committed but held in memory to the file (a checkpoint), so the memory
    allowed goes to the next piece."""
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:  # another transaction open (a served read): pieces still help
        log.debug("no checkpoint before the next piece", extra={"error": _sentence(exc)})


def _in_transaction(con: duckdb.DuckDBPyConnection, work: Callable[[], object]) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        work()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _clear(
    con: duckdb.DuckDBPyConnection, quarantined: list[tuple[datetime, datetime, str]]
) -> None:
    """Forget the pending ranges and record the quarantined ones, in one transaction."""

    def work() -> None:
        con.execute("DELETE FROM classify_pending")
        for lo, hi, reason in quarantined:
            con.execute("INSERT INTO classify_quarantine VALUES (?, ?, ?, now())", [lo, hi, reason])

    _in_transaction(con, work)


def _sentence(exc: BaseException) -> str:
    """The first line of an error, named by its type: a quarantine or reject reason."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
