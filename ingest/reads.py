"""Read queries behind the dashboard: (Reader, Filters) -> DataFrame; the only SQL its pages use.

store -> (read queries) -> dashboard. Counts and rates come from the per-minute rollups that ingest
maintains (request_minutes, conflict_minutes), so no page scans the raw requests; lists of
conflicts come from `conflicts`, which holds only the 409s. Filters are whole minutes, so rollups
and raw rows always agree on what a time range contains.

The filters and the WHERE clauses they become are in `ingest.read_filters`; the filters and
`filters_sql` can be imported from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from conflictradar.ingest.read_filters import (
    MINUTE,
    Filters,
    ceil_minute,
    filters_sql,
    floor_minute,
    rollup_where_clauses,
    where_clause,
)
from conflictradar.ingest.reader import Reader

# What can be imported from here, defined here or in ingest.read_filters.
__all__ = [
    "BUCKETS_S",
    "EXAMPLE_QUERIES",
    "MINUTE",
    "DataStatus",
    "Drill",
    "FilterOptions",
    "Filters",
    "bucket_seconds",
    "cause_catalog",
    "cause_examples",
    "cause_shares",
    "ceil_minute",
    "conflict_detail",
    "conflict_rows",
    "data_status",
    "endpoint_causes",
    "endpoint_heatmap",
    "filter_options",
    "filters_sql",
    "floor_minute",
    "kpis",
    "timeline",
    "top_clients",
    "top_endpoints",
    "top_resources",
]

BUCKETS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)


@dataclass(frozen=True)
class Drill:
    """A narrowing of a conflict list below the sidebar's dimensions (drill-down, explorer)."""

    path: str | None = None
    client: str | None = None
    text: str = ""  # case-insensitive substring of path, message or evidence


@dataclass(frozen=True)
class DataStatus:
    """What is in the database: enough to choose a friendly state and to anchor time ranges."""

    tables: frozenset[str]
    requests: int = 0
    conflicts: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    last_ingest: datetime | None = None

    @property
    def has_schema(self) -> bool:
        return {"requests", "conflicts", "request_minutes", "conflict_minutes"} <= self.tables

    @property
    def version(self) -> tuple[object, ...]:
        """Changes whenever ingest commits, so cached reads never outlive the data they show."""
        return (self.requests, self.conflicts, self.newest, self.last_ingest)


@dataclass(frozen=True)
class FilterOptions:
    files: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()


def bucket_seconds(span: timedelta, target: int = 72) -> int:
    """The smallest round bucket that cuts `span` into at most `target` pieces."""
    for b in BUCKETS_S:
        if span.total_seconds() / b <= target:
            return b
    return BUCKETS_S[-1]


def _bucket(col: str) -> str:
    return f"to_timestamp(floor(epoch({col}) / $bucket) * $bucket)"


# -- the database as a whole ----------------------------------------------------------------


def data_status(reader: Reader) -> DataStatus:
    if not reader.exists():
        return DataStatus(frozenset())
    names = reader.frame("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'")
    tables = frozenset(names["table_name"].to_list())
    status = DataStatus(tables)
    if not status.has_schema:
        return status
    ingest = "(SELECT max(updated) FROM files)" if "files" in tables else "NULL::TIMESTAMPTZ"
    row = reader.frame(
        "SELECT (SELECT count(*) FROM requests) AS requests,"
        " (SELECT count(*) FROM conflicts) AS conflicts,"
        " (SELECT min(minute) FROM request_minutes) AS oldest,"
        " (SELECT max(ts) FROM requests"
        "   WHERE ts >= (SELECT max(minute) FROM request_minutes)) AS newest,"
        f" {ingest} AS last_ingest"
    ).row(0, named=True)
    return replace(status, **row)


def filter_options(reader: Reader) -> FilterOptions:
    df = reader.frame(
        "SELECT 'files' AS kind, file AS value FROM request_minutes GROUP BY file"
        " UNION ALL SELECT 'hosts', host FROM request_minutes GROUP BY host"
        " UNION ALL SELECT 'endpoints', endpoint FROM request_minutes GROUP BY endpoint"
        " UNION ALL SELECT 'methods', method FROM request_minutes GROUP BY method"
        " UNION ALL SELECT 'causes', cause FROM causes"
        " UNION ALL SELECT 'causes', cause FROM conflict_minutes GROUP BY cause"
    ).drop_nulls()
    values = {
        kind: tuple(sorted(set(df.filter(pl.col("kind") == kind)["value"].to_list())))
        for kind in ("files", "hosts", "endpoints", "methods", "causes")
    }
    return FilterOptions(**values)


# -- counts and rates (rollups) ---------------------------------------------------------------


def kpis(reader: Reader, f: Filters) -> pl.DataFrame:
    """One row: requests, conflicts, rate, endpoints and resources hit, clients, top cause."""
    req, con, params = rollup_where_clauses(f)
    raw, _ = where_clause(f, "ts", cause=True)
    return reader.frame(
        f"WITH r AS (SELECT coalesce(sum(requests), 0) AS n FROM request_minutes WHERE {req}),"
        f" c AS (SELECT coalesce(sum(conflicts), 0) AS n, count(DISTINCT endpoint) AS endpoints"
        f"       FROM conflict_minutes WHERE {con} AND conflicts > 0),"
        f" k AS (SELECT count(DISTINCT path) AS resources,"
        f"       count(DISTINCT (client_ip, user_agent)) AS clients FROM conflicts WHERE {raw}),"
        f" t AS (SELECT cause, sum(conflicts) AS n FROM conflict_minutes WHERE {con}"
        f"       GROUP BY cause ORDER BY n DESC, cause LIMIT 1)"
        " SELECT r.n::BIGINT AS requests, c.n::BIGINT AS conflicts,"
        " c.n / nullif(r.n, 0) AS rate, c.endpoints, k.resources, k.clients,"
        " (SELECT cause FROM t) AS top_cause, (SELECT n FROM t)::BIGINT AS top_cause_conflicts"
        " FROM r, c, k",
        params,
    )


def timeline(reader: Reader, f: Filters) -> pl.DataFrame:
    """Per time bucket and cause: conflicts, with the bucket's requests (cause null if none)."""
    req, con, params = rollup_where_clauses(f)
    bucket = bucket_seconds(f.span)
    return reader.frame(
        f"WITH r AS (SELECT {_bucket('minute')} AS bucket, sum(requests)::BIGINT AS requests"
        f"           FROM request_minutes WHERE {req} GROUP BY ALL),"
        f" c AS (SELECT {_bucket('minute')} AS bucket, cause, sum(conflicts)::BIGINT AS conflicts"
        f"       FROM conflict_minutes WHERE {con} GROUP BY ALL)"
        " SELECT coalesce(r.bucket, c.bucket) AS bucket, c.cause,"
        " coalesce(c.conflicts, 0) AS conflicts, coalesce(r.requests, 0) AS requests"
        " FROM r FULL JOIN c USING (bucket) ORDER BY bucket, c.cause",
        params | {"bucket": bucket},
    )


def top_endpoints(reader: Reader, f: Filters, limit: int = 10) -> pl.DataFrame:
    """Endpoints by conflicts: requests, rate and the main cause."""
    req, con, params = rollup_where_clauses(f)
    return reader.frame(
        f"WITH c AS (SELECT endpoint, cause, sum(conflicts) AS n FROM conflict_minutes"
        f"           WHERE {con} GROUP BY ALL HAVING n > 0),"
        " e AS (SELECT endpoint, sum(n)::BIGINT AS conflicts, arg_max(cause, (n, cause)) AS"
        "       main_cause FROM c GROUP BY endpoint"
        "       ORDER BY conflicts DESC, endpoint LIMIT $limit),"
        f" r AS (SELECT endpoint, sum(requests)::BIGINT AS requests FROM request_minutes"
        f"       WHERE {req} AND endpoint IN (SELECT endpoint FROM e) GROUP BY endpoint)"
        " SELECT e.endpoint, e.conflicts, r.requests, e.conflicts / nullif(r.requests, 0) AS rate,"
        " e.main_cause FROM e LEFT JOIN r USING (endpoint) ORDER BY conflicts DESC, endpoint",
        params | {"limit": limit},
    )


def endpoint_heatmap(reader: Reader, f: Filters, top: int = 15) -> pl.DataFrame:
    """The top endpoints by conflicts x time buckets: requests, conflicts and the 409 rate."""
    req, con, params = rollup_where_clauses(f)
    bucket = bucket_seconds(f.span)
    return reader.frame(
        f"WITH e AS (SELECT endpoint FROM conflict_minutes WHERE {con} GROUP BY endpoint"
        "           HAVING sum(conflicts) > 0 ORDER BY sum(conflicts) DESC, endpoint LIMIT $top),"
        f" c AS (SELECT endpoint, {_bucket('minute')} AS bucket, sum(conflicts)::BIGINT AS n"
        f"       FROM conflict_minutes WHERE {con} AND endpoint IN (SELECT endpoint FROM e)"
        "       GROUP BY ALL),"
        f" r AS (SELECT endpoint, {_bucket('minute')} AS bucket, sum(requests)::BIGINT AS n"
        f"       FROM request_minutes WHERE {req} AND endpoint IN (SELECT endpoint FROM e)"
        "       GROUP BY ALL)"
        " SELECT endpoint, bucket, coalesce(r.n, 0) AS requests, coalesce(c.n, 0) AS conflicts,"
        " coalesce(c.n, 0) / nullif(r.n, 0) AS rate"
        " FROM r FULL JOIN c USING (endpoint, bucket) ORDER BY endpoint, bucket",
        params | {"bucket": bucket, "top": top},
    )


def endpoint_causes(reader: Reader, f: Filters, top: int = 25) -> pl.DataFrame:
    """Conflicts per endpoint and cause, for the busiest `top` endpoints."""
    con, params = where_clause(f, "minute", cause=True)
    return reader.frame(
        f"WITH c AS (SELECT endpoint, cause, sum(conflicts)::BIGINT AS conflicts"
        f"           FROM conflict_minutes WHERE {con} GROUP BY ALL HAVING conflicts > 0),"
        " e AS (SELECT endpoint FROM c GROUP BY endpoint"
        "       ORDER BY sum(conflicts) DESC, endpoint LIMIT $top)"
        " SELECT * FROM c WHERE endpoint IN (SELECT endpoint FROM e)"
        " ORDER BY conflicts DESC, endpoint, cause",
        params | {"top": top},
    )


def cause_shares(reader: Reader, f: Filters) -> pl.DataFrame:
    """Each cause's conflicts and share of all conflicts in the filters, with its title."""
    con, params = where_clause(f, "minute", cause=True)
    return reader.frame(
        f"WITH c AS (SELECT cause, sum(conflicts)::BIGINT AS conflicts FROM conflict_minutes"
        f"           WHERE {con} GROUP BY cause HAVING conflicts > 0)"
        " SELECT c.cause, coalesce(k.title, c.cause) AS title, c.conflicts,"
        " c.conflicts / sum(c.conflicts) OVER () AS share"
        " FROM c LEFT JOIN causes k USING (cause) ORDER BY conflicts DESC, cause",
        params,
    )


# -- conflicts (raw 409 rows) -----------------------------------------------------------------


def top_resources(reader: Reader, f: Filters, limit: int = 20) -> pl.DataFrame:
    """Concrete paths with the most conflicts (counted first, described for the top only)."""
    raw, params = where_clause(f, "ts", cause=True)
    return reader.frame(
        f"WITH top AS (SELECT path, count(*) AS n FROM conflicts WHERE {raw}"
        "             GROUP BY path ORDER BY n DESC, path LIMIT $limit)"
        " SELECT c.path, any_value(endpoint) AS endpoint, any_value(top.n) AS conflicts,"
        " mode(cause) AS main_cause, count(DISTINCT client_ip) AS clients,"
        " string_agg(DISTINCT method, ', ') AS methods, max(ts) AS last_seen"
        f" FROM conflicts c JOIN top ON c.path IS NOT DISTINCT FROM top.path WHERE {raw}"
        " GROUP BY c.path ORDER BY conflicts DESC, c.path",
        params | {"limit": limit},
    )


def top_clients(reader: Reader, f: Filters, limit: int = 20) -> pl.DataFrame:
    """Clients (IP plus user agent) with the most conflicts."""
    raw, params = where_clause(f, "ts", cause=True)
    return reader.frame(
        f"WITH top AS (SELECT client_ip, user_agent, count(*) AS n FROM conflicts WHERE {raw}"
        "             GROUP BY ALL ORDER BY n DESC, client_ip, user_agent LIMIT $limit)"
        " SELECT c.client_ip, c.user_agent, any_value(top.n) AS conflicts,"
        " count(DISTINCT path) AS resources, mode(cause) AS main_cause, max(ts) AS last_seen"
        " FROM conflicts c JOIN top ON c.client_ip IS NOT DISTINCT FROM top.client_ip"
        f" AND c.user_agent IS NOT DISTINCT FROM top.user_agent WHERE {raw}"
        " GROUP BY c.client_ip, c.user_agent ORDER BY conflicts DESC, c.client_ip, c.user_agent",
        params | {"limit": limit},
    )


def cause_catalog(reader: Reader) -> pl.DataFrame:
    return reader.frame("SELECT cause, title, description, remediation FROM causes ORDER BY cause")


def cause_examples(reader: Reader, f: Filters, per_cause: int = 3) -> pl.DataFrame:
    """The newest few conflicts of each cause, with their evidence."""
    raw, params = where_clause(f, "ts", cause=True)
    return reader.frame(
        "FROM (SELECT cause, unnest(max_by(struct_pack(ts, method, path, evidence, file, line),"
        f" (ts, file, line), $n), recursive := true) FROM conflicts WHERE {raw} GROUP BY cause)"
        " ORDER BY cause, ts DESC, file, line",
        params | {"n": per_cause},
    )


def conflict_rows(
    reader: Reader, f: Filters, drill: Drill = Drill(), limit: int = 1000
) -> pl.DataFrame:
    """Conflicts in the filters, newest first, with `total` = how many matched before the limit."""
    raw, params = where_clause(f, "ts", cause=True)
    if drill.path is not None:
        raw += " AND path = $path"
        params["path"] = drill.path
    if drill.client is not None:
        raw += " AND client_ip = $client"
        params["client"] = drill.client
    if drill.text.strip():
        raw += (
            " AND (contains(lower(path), $text) OR contains(lower(coalesce(message, '')),"
            " $text) OR contains(lower(evidence), $text))"
        )
        params["text"] = drill.text.strip().lower()
    return reader.frame(
        "SELECT ts, method, path, endpoint, cause, confidence, evidence, client_ip, user_agent,"
        " host, upstream_status, message, request_id, file, line,"
        f" (SELECT count(*) FROM conflicts WHERE {raw}) AS total"
        f" FROM conflicts WHERE {raw} ORDER BY ts DESC, file, line LIMIT $limit",
        params | {"limit": limit},
    )


def conflict_detail(reader: Reader, file: str, line: int) -> pl.DataFrame:
    """One conflict with its raw log line and its cause's title and remediation."""
    return reader.frame(
        "SELECT c.ts, c.method, c.path, c.endpoint, c.cause, c.confidence, c.evidence,"
        " c.client_ip, c.user_agent, c.message, c.file, c.line, c.lines, k.title, k.remediation,"
        " (SELECT any_value(raw) FROM conflict_lines l WHERE l.file = c.file AND l.line = c.line)"
        " AS raw FROM conflicts c LEFT JOIN causes k USING (cause)"
        " WHERE c.file = $file AND c.line = $line LIMIT 1",
        {"file": file, "line": line},
    )


# -- the SQL page ----------------------------------------------------------------------------

EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    ("409s by cause", """SELECT cause, count(*) AS conflicts,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM conflicts GROUP BY cause ORDER BY conflicts DESC"""),
    ("Endpoints by 409 rate (per-minute rollup)", """SELECT endpoint, sum(requests) AS requests,
       sum(requests) FILTER (WHERE status = 409) AS conflicts,
       round(100.0 * conflicts / requests, 2) AS rate_pct
FROM request_minutes GROUP BY endpoint HAVING conflicts > 0
ORDER BY conflicts DESC LIMIT 20"""),
    ("409s per hour", """SELECT date_trunc('hour', minute) AS hour, sum(conflicts) AS conflicts
FROM conflict_minutes GROUP BY hour ORDER BY hour"""),
    ("Lost races: who won, and when", """SELECT ts, method, path, evidence FROM conflicts
WHERE cause = 'concurrent_update' ORDER BY ts DESC LIMIT 50"""),
    ("Clients retrying successful requests", """SELECT client_ip, user_agent, count(*) AS retries
FROM conflicts WHERE cause = 'retry_after_success'
GROUP BY ALL ORDER BY retries DESC LIMIT 20"""),
    ("Lines that did not parse", """SELECT file, line, reason, left(raw, 120) AS raw
FROM rejects ORDER BY file, line LIMIT 100"""),
)  # fmt: skip
