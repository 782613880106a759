"""What the dashboard's sidebar selects, and the SQL WHERE clauses it becomes.

A selection is a [start, end) range in whole UTC minutes plus column values, so the per-minute
rollups and the raw rows always agree on what a time range contains. The read queries
(`ingest.reads`, `ingest.confidence_reads`, `ingest.alert_reads`) take these; a drill-down's
extra selection (`reads.Drill`) is applied by the one read that takes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)


def floor_minute(t: datetime) -> datetime:
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: datetime) -> datetime:
    down = floor_minute(t)
    return down if down == t.astimezone(UTC) else down + MINUTE


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects: a [start, end) range in whole UTC minutes and column values.

    An empty tuple means "any". `causes` narrows conflicts only; request counts ignore it.
    """

    start: datetime
    end: datetime
    files: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        start, end = floor_minute(self.start), ceil_minute(self.end)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", max(end, start + MINUTE))

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Filters:
        """The same filters over the period of equal length just before."""
        return replace(self, start=self.start - self.span, end=self.start)

    def dimensions(self, cause: bool = True) -> list[tuple[str, tuple[str, ...]]]:
        """(column, selected values) for every narrowed column."""
        dims = [
            ("file", self.files),
            ("host", self.hosts),
            ("endpoint", self.endpoints),
            ("method", self.methods),
            ("cause", self.causes if cause else ()),
        ]
        return [(col, values) for col, values in dims if values]


def where_clause(f: Filters, time_col: str, *, cause: bool) -> tuple[str, dict[str, object]]:
    """A WHERE clause over the time range and the narrowed columns, and its parameters."""
    parts = [f"{time_col} >= $start", f"{time_col} < $end"]
    params: dict[str, object] = {"start": f.start, "end": f.end}
    for col, values in f.dimensions(cause):
        parts.append(f"list_contains(${col}_in, {col})")
        params[f"{col}_in"] = list(values)
    return " AND ".join(parts), params


def rollup_where_clauses(f: Filters) -> tuple[str, str, dict[str, object]]:
    """WHERE clauses over `request_minutes` (no cause) and `conflict_minutes`, and their
    parameters: the queries that set conflicts beside requests use both."""
    req, p1 = where_clause(f, "minute", cause=False)
    con, p2 = where_clause(f, "minute", cause=True)
    return req, con, p1 | p2


# -- the SQL page ----------------------------------------------------------------------------


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def filters_sql(f: Filters) -> str:
    """A query over `conflicts` with the filters written out as a WHERE clause, to start from."""
    parts = [f"ts >= {_literal(f.start)}", f"ts < {_literal(f.end)}"]
    for col, values in f.dimensions():
        parts.append(f"{col} IN ({', '.join(_literal(v) for v in values)})")
    where = "\n  AND ".join(parts)
    return (
        "SELECT ts, method, path, cause, evidence, file, line\nFROM conflicts\n"
        f"WHERE {where}\nORDER BY ts DESC LIMIT 500"
    )
