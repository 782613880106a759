"""`alerts check --lake DIR`: the counts one evaluation needs, read from a lake.

The alert engine keeps its state (what is pending or firing, incidents, the delivery outbox) in
the `--db` database, as the one-machine `alerts check` does; only the counts come from the lake.
For each evaluation the rollups (`request_minutes`, `conflict_minutes`) and the 409s of the rules'
look-back, and the request rows of the minute under way, are read through the sandboxed,
read-only lake reader (`ingest.lake.reader`: partition pruning by hour, rollups first) into an
in-memory DuckDB, on which the engine runs the very count queries it runs on a database
(`ingest.alert_counts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from conflictradar.ingest.alert_counts import copy_for_backtest
from conflictradar.ingest.errors import DatabaseError
from conflictradar.ingest.lake.reader import LakeReader
from conflictradar.ingest.settings import SqlSettings

LakeReads = Callable[[datetime], contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]]


def lake_reads(lake: Path, sql: SqlSettings, lookback: timedelta) -> LakeReads:
    """For an evaluation at `now`: a connection holding what the alert reads need over
    [now - lookback, now] from `lake` (closed when the evaluation is done)."""
    reader = LakeReader(lake, sql)
    if not reader.exists():
        raise DatabaseError(
            f"{lake} is not a conflictradar lake yet; run `conflictradar ingest PATH --lake {lake}`"
        )

    @contextlib.contextmanager
    def reads(now: datetime) -> Iterator[duckdb.DuckDBPyConnection]:
        mem = copy_for_backtest(reader, now - lookback, now, rows=False)
        try:
            # Only the minute under way is counted from rows (its rollup is not complete yet):
            # its client-facing lines, as `copy_for_backtest` copies them (a line joined under
            # another line's request is not a request of its own).
            lo, hi = now.replace(second=0, microsecond=0) - timedelta(microseconds=1), now
            rows = reader.query(
                "SELECT r.ts, NULL::VARCHAR AS file, NULL::BIGINT AS line, r.endpoint, r.status"
                " FROM requests r ANTI JOIN (SELECT file, line, ts FROM request_links"
                " WHERE ts > ? AND ts <= ?) l ON l.file = r.file AND l.line = r.line"
                " AND l.ts = r.ts WHERE r.ts > ? AND r.ts <= ?",
                [lo, hi, lo, hi],
            )
            mem.register("_rows", rows)
            mem.execute("INSERT INTO requests SELECT * FROM _rows")
            mem.unregister("_rows")
            yield mem
        finally:
            mem.close()

    return reads
