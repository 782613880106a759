"""Requests across tiers (classify stage): the lines a gateway and a service wrote for one request.

SPEC section 3: lines that carry the same request id within a minute are one request, joined
across tiers only (two gateway nodes, or one file, never join: clients reuse ids on retries).
A service line joins the gateway line with its id nearest in time; the gateway line is the
request's client-facing line (its head). `request_links` holds one row per joined service line.

Counts follow: the per-minute rollup (`request_minutes`) counts lines as they are stored, so
when a line becomes (or stops being) part of another line's request, a -1 (or +1) row for it is
added, in the same transaction. Every read that sums the rollup then counts requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from conflictradar.ingest.timestamps import earlier, later

# Formats written by services (application logs); every other format is a gateway or a proxy.
SERVICE_FORMATS: tuple[str, ...] = ("ecs", "otel", "json", "uvicorn", "django", "rails")

# A format labelled `uvicorn (time read)` (times estimated, `formats.time_read_label`) is uvicorn.
_TIER = (
    "CASE WHEN list_contains($service_formats, split_part({f}, ' (', 1)) THEN 'service'"
    " ELSE 'gateway' END"
)


def tier_sql(format_col: str) -> str:
    """SQL naming the tier of a line from its format column."""
    return _TIER.format(f=format_col)


# Service lines in [a, b] with a request id, each with the gateway line of the same id nearest
# in time (within the join window); ties go to the earlier file and line.
_LINKS = """
SELECT s.file, s.line, s.ts, h.f AS head_file, h.l AS head_line, h.t AS head_ts FROM (
    SELECT s.file, s.line, s.ts,
           arg_min(struct_pack(f := g.file, l := g.line, t := g.ts),
                   struct_pack(d := abs(epoch_us(g.ts) - epoch_us(s.ts)), f := g.file,
                               l := g.line)) AS h
    FROM (SELECT file, line, ts, request_id FROM requests
          WHERE ts BETWEEN $a AND $b AND request_id IS NOT NULL
            AND list_contains($service_formats, format)) s
    JOIN (SELECT file, line, ts, request_id FROM requests
          WHERE ts BETWEEN $a - to_microseconds($join_us) AND $b + to_microseconds($join_us)
            AND request_id IS NOT NULL AND NOT list_contains($service_formats, format)) g
      ON g.request_id = s.request_id
     AND g.ts BETWEEN s.ts - to_microseconds($join_us) AND s.ts + to_microseconds($join_us)
    GROUP BY s.file, s.line, s.ts
) s
"""

# Old and new links of [a, b] side by side: +1 for a line that stops being joined, -1 for one
# that starts, 0 when only its head changed.
_CHANGED = """
SELECT coalesce(n.file, o.file) AS file, coalesce(n.line, o.line) AS line,
       coalesce(n.ts, o.ts) AS ts, o.head_ts AS old_head_ts, n.head_ts AS new_head_ts,
       CASE WHEN n.file IS NULL THEN 1 WHEN o.file IS NULL THEN -1 ELSE 0 END AS sign
FROM ({links}) n
FULL JOIN (SELECT * FROM request_links WHERE ts BETWEEN $a AND $b) o
  ON o.file = n.file AND o.line = n.line AND o.ts = n.ts
WHERE n.file IS NULL OR o.file IS NULL
   OR (o.head_file, o.head_line, o.head_ts) IS DISTINCT FROM (n.head_file, n.head_line, n.head_ts)
"""

_ADJUST_ROLLUP = """
INSERT INTO request_minutes
SELECT date_trunc('minute', r.ts), r.file, r.host, r.endpoint, r.method, r.status,
       sum(x.sign), sum(x.sign * r.bytes), sum(x.sign * r.duration_ms)
FROM _links_changed x
JOIN requests r ON r.file = x.file AND r.line = x.line AND r.ts = x.ts
WHERE x.sign <> 0 AND r.ts BETWEEN $a AND $b
GROUP BY ALL
"""

# Whether [a, b] holds anything the links depend on: a service line with a request id (a new
# link) or a stored link (one that may go). Without either nothing can change, and this costs
# a fraction of the comparison below (~1 ms against ~7 ms a batch, measured in `watch`).
# Whether a batch of times [a + window, b - window] can change a request's lines: a line that can
# join another (a service line with a request id) or a link within reach. Also a column of the
# classifier's first query of a range (one query, not two, for logs without request ids).
ANY_SQL = """
SELECT EXISTS (SELECT 1 FROM requests WHERE ts BETWEEN $a AND $b AND request_id IS NOT NULL
                 AND list_contains($service_formats, format))
    OR EXISTS (SELECT 1 FROM request_links WHERE ts BETWEEN $a AND $b)
"""

_SPAN = """
SELECT min(least(ts, old_head_ts, new_head_ts)), max(greatest(ts, old_head_ts, new_head_ts))
FROM ({changed})
"""


@dataclass(frozen=True)
class Tiers:
    """How lines join into requests: the join window and which formats are services."""

    join_us: int
    service_formats: tuple[str, ...]

    @property
    def window(self) -> timedelta:
        return timedelta(microseconds=self.join_us)

    def params(self) -> dict[str, object]:
        return {"join_us": self.join_us, "service_formats": list(self.service_formats)}

    def reach(self, lo: datetime, hi: datetime) -> dict[str, object]:
        """ANY_SQL's parameters for a batch of times [lo, hi]."""
        return {"a": earlier(lo, self.window), "b": later(hi, self.window),
                "service_formats": list(self.service_formats)}  # fmt: skip

    def relink(
        self, con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, checked: bool = False
    ) -> tuple[datetime, datetime] | None:
        """Re-join the lines a batch of times [lo, hi] can affect, correct the rollup for every
        line whose membership changed, and return the span of lines and heads whose request
        changed (their 409s must be explained again), or None when nothing changed.

        A batch without a line that can join (no service line with a request id, no link within
        reach) is one read-only query (ANY_SQL; `checked`: the caller ran it and it held). Else
        the new links and their differences from the stored ones are each computed once, into
        temporary tables (computing them once to compare and again to write cost a fleet's
        watcher ~9 ms more a look, of ~27, measured)."""
        p = self.params() | self.reach(lo, hi)
        if not checked:
            any_row = con.execute(ANY_SQL, _only(p, "a", "b", "service_formats")).fetchone()
            if not any_row or not any_row[0]:
                return None
        con.execute("CREATE OR REPLACE TEMP TABLE _links_new AS " + _LINKS, p)
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _links_changed AS "
                + _CHANGED.format(links="SELECT * FROM _links_new"),
                _only(p, "a", "b"),
            )
            row = con.execute(_SPAN.format(changed="SELECT * FROM _links_changed")).fetchone()
            if not row or row[0] is None:
                return None
            con.execute(_ADJUST_ROLLUP, _only(p, "a", "b"))
            con.execute("DELETE FROM request_links WHERE ts BETWEEN $a AND $b", _only(p, "a", "b"))
            con.execute("INSERT INTO request_links SELECT * FROM _links_new")
        finally:
            con.execute("DROP TABLE IF EXISTS _links_changed")
            con.execute("DROP TABLE IF EXISTS _links_new")
        return row[0], row[1]


def _only(params: dict[str, object], *names: str) -> dict[str, object]:
    return {k: params[k] for k in names}
