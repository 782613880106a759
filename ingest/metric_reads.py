"""Store -> metrics: the counts `watch --metrics` exposes, read in one consistent snapshot.

Counts come from the tables themselves, not from counters kept in memory, so a scrape always
agrees with `conflictradar sql` (and a restarted watcher reports the same totals).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb


@dataclass(frozen=True)
class MetricCounts:
    conflicts: list[tuple[str | None, str | None, str | None, int]]  # endpoint, method, cause, n
    requests: list[tuple[str | None, str | None, int]]  # endpoint, method, n
    rejects: int
    files: int
    newest: datetime | None  # the newest stored request's timestamp
    deliveries: list[tuple[str, str, int]]  # channel, outcome, n
    alerts: list[tuple[str, str, int]]  # rule, state, n


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'")
    return {str(r[0]) for r in rows.fetchall()}


def read_metric_counts(con: duckdb.DuckDBPyConnection) -> MetricCounts:
    """Every count, from one read-only transaction (one snapshot of the database)."""
    con.execute("BEGIN TRANSACTION")
    try:
        tables = _tables(con)
        conflicts = con.execute(
            "SELECT endpoint, method, cause, count(*) FROM conflicts GROUP BY ALL"
        ).fetchall()
        requests = con.execute(
            "SELECT endpoint, method, sum(requests)::BIGINT FROM request_minutes GROUP BY ALL"
        ).fetchall()
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()
        files = con.execute("SELECT count(*) FROM files").fetchone()
        newest = con.execute("SELECT max(ts) FROM requests").fetchone()
        deliveries = (
            con.execute("SELECT channel, outcome, count(*) FROM deliveries GROUP BY ALL").fetchall()
            if "deliveries" in tables
            else []
        )
        alerts = (
            con.execute("SELECT rule, state, count(*) FROM alert_state GROUP BY ALL").fetchall()
            if "alert_state" in tables
            else []
        )
    finally:
        con.execute("ROLLBACK")
    return MetricCounts(
        conflicts=[(e, m, c, int(n)) for e, m, c, n in conflicts],
        requests=[(e, m, int(n or 0)) for e, m, n in requests],
        rejects=int(rejects[0]) if rejects else 0,
        files=int(files[0]) if files else 0,
        newest=newest[0] if newest else None,
        deliveries=[(str(c), str(o), int(n)) for c, o, n in deliveries],
        alerts=[(str(r), str(s), int(n)) for r, s, n in alerts],
    )


def newest_request(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute("SELECT max(ts) FROM requests").fetchone()
    return row[0] if row else None
