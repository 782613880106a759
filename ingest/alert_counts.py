"""Store -> alerts: requests and 409s per scope value in given time spans (the alert reads).

`window_counts` takes lists of spans, so a rule's windows and history windows at every time of a
backtest over a day cost one query, and the live engine runs the very same SQL with one
evaluation time. Spans over whole minutes are summed from
the rollups (`request_minutes`, `conflict_minutes`) with a weight (a partly covered minute counts
in proportion); the minute under way is counted from the rows (`requests`, `conflicts`). Both
count requests, not lines: a service line joined under its gateway's line (ingest.tiers) is one
request with it, as in `conflicts` and the corrected rollups. 409s
per endpoint are requests with status 409 (known at once); 409s per cause come from `conflicts`
(known once classified). For the cause scope the key '' carries all requests: the denominator.

The functions run on a DuckDB connection: the writer's own (the live engine, inside its
transaction) or an in-memory copy made with `copy_for_backtest` through the read API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from conflictradar.ingest.alert_settings import Scope
from conflictradar.ingest.reader import Reader

TOTAL = ""  # the key of all requests (the global scope, and the cause scope's denominator)
_ENDPOINT_KEY = "coalesce(endpoint, '(none)')"
_CAUSE_KEY = "coalesce(cause, 'unknown')"


# The request rows that are their request's client-facing line: a service line joined under its
# gateway's line (`request_links`, ingest.tiers) is part of that request, not one of its own. The
# rollups are corrected the same way and `conflicts` holds client-facing lines only, so every
# alert read counts requests, not lines.
_HEADS = (
    "(SELECT r.ts, r.endpoint, r.status FROM requests r ANTI JOIN (SELECT file, line, ts"
    " FROM request_links WHERE ts > ${p}lo AND ts <= ${p}hi) l"
    " ON l.file = r.file AND l.line = r.line AND l.ts = r.ts)"
)


@dataclass(frozen=True)
class Span:
    """A time span [start, end) of whole minutes (rollups) or (start, end] of rows, with a weight."""

    id: int
    start: datetime
    end: datetime
    weight: float = 1.0


@dataclass(frozen=True)
class ScopeCount:
    span: int
    key: str
    requests: float
    conflicts: float


@dataclass(frozen=True)
class Count:
    name: str
    n: int


@dataclass(frozen=True)
class Breakdown:
    """What the 409s of one scope and window were made of: for the message."""

    causes: tuple[Count, ...]
    resources: tuple[Count, ...]
    endpoints: tuple[Count, ...]


def first_minute(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The first minute with any request: history before it is unknown, not quiet."""
    row = con.execute("SELECT min(minute) FROM request_minutes").fetchone()
    return row[0] if row else None


def _part(
    scope: Scope, spans: Sequence[Span], *, rows: bool, p: str
) -> tuple[str, dict[str, object]]:
    """One SELECT of (span id, key, requests, 409s) over rollups or rows; params prefixed `p`.

    Each source is first reduced to (time, key, requests, 409s) inside the spans' bounds, then
    joined to the spans: the rollups hold a row per file, host, method and status of each
    minute, and a history of 30 windows joined row by row cost 3x as much (23 against 7.5 ms
    for 2.5 hours of 48 files' rollups)."""
    spans_sql = (
        f"SELECT unnest(${p}ids) AS id, unnest(${p}starts::TIMESTAMPTZ[]) AS lo,"
        f" unnest(${p}ends::TIMESTAMPTZ[]) AS hi, unnest(${p}weights::DOUBLE[]) AS weight"
    )
    params: dict[str, object] = {
        f"{p}ids": [s.id for s in spans],
        f"{p}starts": [s.start for s in spans],
        f"{p}ends": [s.end for s in spans],
        f"{p}weights": [s.weight for s in spans],
        f"{p}lo": min(s.start for s in spans),
        f"{p}hi": max(s.end for s in spans),
    }
    key = {Scope.GLOBAL: "''", Scope.ENDPOINT: _ENDPOINT_KEY, Scope.CAUSE: "''"}[scope]
    if rows:  # (start, end] of rows: each request's client-facing line, one request each
        ts, left, right = "ts", ">", "<="
        requests = (
            f"SELECT ts, {key} AS key, count(*) AS requests,"
            f" count(*) FILTER (status = 409) AS conflicts FROM {_HEADS.format(p=p)}"
        )
        by_cause = f"SELECT ts, {_CAUSE_KEY} AS key, count(*) AS conflicts FROM conflicts"
    else:  # [start, end) of minute rollups
        ts, left, right = "minute", ">=", "<"
        requests = (
            f"SELECT minute, {key} AS key, sum(requests) AS requests,"
            " sum(requests) FILTER (status = 409) AS conflicts FROM request_minutes"
        )
        by_cause = (
            f"SELECT minute, {_CAUSE_KEY} AS key, sum(conflicts) AS conflicts FROM conflict_minutes"
        )
    inside = f" WHERE {ts} {left} ${p}lo AND {ts} {right} ${p}hi GROUP BY ALL"

    def joined(source: str) -> str:
        return (
            f"FROM ({spans_sql}) w JOIN ({source}{inside}) s"
            f" ON s.{ts} {left} w.lo AND s.{ts} {right} w.hi"
        )

    counted = (
        "SELECT w.id, s.key, sum(s.requests * w.weight) AS requests,"
        f" sum(s.conflicts * w.weight) AS conflicts {joined(requests)} GROUP BY ALL"
    )
    if scope is not Scope.CAUSE:
        return counted, params
    # The cause scope: 409s per cause, each over all requests of its span (the key '').
    sql = f"""
        SELECT * FROM (
        WITH t AS ({counted}),
        c AS (SELECT w.id, s.key, sum(s.conflicts * w.weight) AS conflicts
              {joined(by_cause)} GROUP BY ALL)
        SELECT id, '' AS key, requests, conflicts FROM t
        UNION ALL SELECT c.id, c.key, t.requests, c.conflicts FROM c JOIN t USING (id))
    """
    return sql, params


def window_counts(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    rolled: Sequence[Span],
    rows: Sequence[Span] = (),
) -> list[ScopeCount]:
    """Requests and 409s per scope value in each span, in one query: `rolled` spans [start, end)
    of whole minutes from the rollups (times the span's weight), `rows` spans (start, end] from
    the rows (the minute under way, which the rollups of a replay would know in full too early).
    A span id may appear in both: its parts add up. Only scope values with any request."""
    parts = [
        _part(scope, spans, rows=is_rows, p=prefix)
        for spans, is_rows, prefix in ((rolled, False, "m_"), (rows, True, "r_"))
        if spans
    ]
    if not parts:
        return []
    sql = " UNION ALL ".join(f"({q})" for q, _ in parts)
    params: dict[str, object] = {}
    for _, p in parts:
        params |= p
    return [
        ScopeCount(int(i), str(k), float(r or 0.0), float(c or 0.0))
        for i, k, r, c in con.execute(sql, params).fetchall()
    ]


def breakdown(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    key: str,
    start: datetime,
    end: datetime,
    top: int,
) -> Breakdown:
    """Top causes, resources (paths) and endpoints among the scope's 409s in (start, end]."""
    if top <= 0:
        return Breakdown((), (), ())
    where = {Scope.GLOBAL: "''", Scope.ENDPOINT: _ENDPOINT_KEY, Scope.CAUSE: _CAUSE_KEY}[scope]

    def top_of(column: str) -> tuple[Count, ...]:
        rows = con.execute(
            f"SELECT coalesce({column}, '(none)') AS v, count(*) AS n FROM conflicts"
            f" WHERE ts > $start AND ts <= $end AND {where} = $key"
            " GROUP BY 1 ORDER BY n DESC, v LIMIT $top",
            {"start": start, "end": end, "key": key, "top": top},
        ).fetchall()
        return tuple(Count(str(v), int(n)) for v, n in rows)

    endpoints = top_of("endpoint") if scope is not Scope.ENDPOINT else ()
    return Breakdown(top_of("cause") if scope is not Scope.CAUSE else (), top_of("path"), endpoints)


def copy_for_backtest(
    reader: Reader, lo: datetime, hi: datetime, *, rows: bool
) -> duckdb.DuckDBPyConnection:
    """An in-memory database with what the alert reads need over [lo, hi], read through the
    read API: the rollups, the 409s (for messages), and the request rows when `rows`."""
    mem = duckdb.connect(":memory:")
    mem.execute("SET TimeZone = 'UTC'")
    tables: list[tuple[str, str, list[object] | None]] = [
        (
            "request_minutes",
            "SELECT minute, endpoint, status, sum(requests)::BIGINT AS requests"
            " FROM request_minutes WHERE minute >= ? AND minute <= ? GROUP BY ALL",
            [lo, hi],
        ),
        (
            "conflict_minutes",
            "SELECT minute, endpoint, cause, sum(conflicts)::BIGINT AS conflicts"
            " FROM conflict_minutes WHERE minute >= ? AND minute <= ? GROUP BY ALL",
            [lo, hi],
        ),
        (
            "conflicts",
            "SELECT ts, endpoint, cause, path FROM conflicts WHERE ts > ? AND ts <= ?",
            [lo, hi],
        ),
        ("first_minute", "SELECT min(minute) AS minute FROM request_minutes", None),
    ]
    if rows:  # client-facing lines only (see _HEADS), so the copy needs no links
        tables.append(
            (
                "requests",
                "SELECT r.ts, NULL::VARCHAR AS file, NULL::BIGINT AS line, r.endpoint, r.status"
                " FROM requests r ANTI JOIN (SELECT file, line, ts FROM request_links"
                " WHERE ts > ? AND ts <= ?) l ON l.file = r.file AND l.line = r.line"
                " AND l.ts = r.ts WHERE r.ts > ? AND r.ts <= ?",
                [lo, hi, lo, hi],
            )
        )
    for name, sql, params in tables:
        arrow: pa.Table = reader.query(sql, params)
        mem.register("_src", arrow)
        mem.execute(f"CREATE TABLE {name} AS SELECT * FROM _src")
        mem.unregister("_src")
    if not rows:
        mem.execute(
            "CREATE TABLE requests (ts TIMESTAMPTZ, file VARCHAR, line BIGINT, endpoint VARCHAR,"
            " status SMALLINT)"
        )
    mem.execute("CREATE TABLE request_links (file VARCHAR, line BIGINT, ts TIMESTAMPTZ)")
    # first_minute() reads request_minutes; a copy cut at `lo` must still know the true start.
    first = mem.execute("SELECT minute FROM first_minute").fetchone()
    if first and first[0] is not None:
        mem.execute(
            "INSERT INTO request_minutes SELECT ?, NULL, 0, 0 WHERE ? < (SELECT min(minute)"
            " FROM request_minutes) OR NOT EXISTS (SELECT 1 FROM request_minutes)",
            [first[0], first[0]],
        )
    return mem
