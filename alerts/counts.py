"""Store -> detectors: 409 counts per scope in the current window and in its history windows.

The current window (now - window, now] is counted from raw `conflicts` (409s are few). History
windows end `k * step` before now (k = 1..history); when window and step are whole minutes they
are summed from the `conflict_minutes` rollup, aligned down to the minute. History windows that
start before the database's first request are left out rather than counted as zero.

Every query takes a list of evaluation times, so a backtest over a day costs a few queries, and
the live engine runs the very same SQL with one time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from alerts.rules import Rule, Scope

GLOBAL_KEY = ""
_KEY_SQL = {
    Scope.GLOBAL: "''",
    Scope.ENDPOINT: "coalesce(endpoint, '(none)')",
    Scope.CAUSE: "coalesce(cause, 'unknown')",
}


def key_sql(scope: Scope) -> str:
    """The SQL expression naming a row's scope value (endpoint template, cause, or '')."""
    return _KEY_SQL[scope]


@dataclass(frozen=True)
class ScopeCount:
    key: str
    value: int
    history: tuple[int, ...]  # oldest window last; only windows with data


@dataclass(frozen=True)
class Sample:
    """Counts for one rule at one evaluation time, for every scope value seen."""

    now: datetime
    counts: tuple[ScopeCount, ...]

    def get(self, key: str) -> ScopeCount:
        return next((c for c in self.counts if c.key == key), ScopeCount(key, 0, ()))


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


def _whole_minutes(seconds: float) -> bool:
    return seconds >= 60 and seconds % 60 == 0


def uses_minutes(rule: Rule) -> bool:
    return _whole_minutes(rule.window_s) and _whole_minutes(rule.step_s)


def _floor_minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def history_windows(rule: Rule, now: datetime) -> list[tuple[int, datetime, datetime]]:
    """(k, start, end) of each history window, k = 1..history."""
    window = timedelta(seconds=rule.window_s)
    out = []
    for k in range(1, rule.history + 1):
        end = now - timedelta(seconds=rule.step_s * k)
        if uses_minutes(rule):
            end = _floor_minute(end)
        out.append((k, end - window, end))
    return out


def data_start(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The first minute with any request: history before it is unknown, not quiet."""
    row = con.execute("SELECT min(minute) FROM request_minutes").fetchone()
    return row[0] if row else None


def _grouped(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    ids: list[int],
    starts: list[datetime],
    ends: list[datetime],
    *,
    minutes: bool,
) -> list[tuple[int, str, int]]:
    """(window id, scope value, 409s) for each window and scope value with any 409."""
    if not ids:
        return []
    if minutes:
        source, ts, amount, left = "conflict_minutes", "minute", "sum(conflicts)", ">="
        right = "<"
    else:
        source, ts, amount, left, right = "conflicts", "ts", "count(*)", ">", "<="
    sql = f"""
        WITH w AS (SELECT unnest($ids) AS id, unnest($starts::TIMESTAMPTZ[]) AS lo,
                          unnest($ends::TIMESTAMPTZ[]) AS hi)
        SELECT w.id, {key_sql(scope)} AS key, CAST({amount} AS BIGINT) AS n
        FROM w JOIN (SELECT * FROM {source} WHERE {ts} {left} $min_lo AND {ts} {right} $max_hi) s
          ON s.{ts} {left} w.lo AND s.{ts} {right} w.hi
        GROUP BY ALL HAVING n <> 0
    """
    params = {
        "ids": ids,
        "starts": starts,
        "ends": ends,
        "min_lo": min(starts),
        "max_hi": max(ends),
    }
    return [(int(i), str(k), int(n)) for i, k, n in con.execute(sql, params).fetchall()]


def sample_rule(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    nows: Sequence[datetime],
    first_data: datetime | None,
) -> list[Sample]:
    """Counts for `rule` at each time in `nows` (current window and history per scope value)."""
    window = timedelta(seconds=rule.window_s)
    current = _grouped(
        con,
        rule.scope,
        list(range(len(nows))),
        [n - window for n in nows],
        list(nows),
        minutes=False,
    )
    ids: list[int] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    available: list[list[int]] = []
    for i, now in enumerate(nows):
        ks = []
        for k, start, end in history_windows(rule, now):
            if first_data is None or start < first_data:
                continue
            ids.append(i * (rule.history + 1) + k)
            starts.append(start)
            ends.append(end)
            ks.append(k)
        available.append(ks)
    past = _grouped(con, rule.scope, ids, starts, ends, minutes=uses_minutes(rule))
    now_counts: list[dict[str, int]] = [{} for _ in nows]
    for i, key, n in current:
        now_counts[i][key] = n
    past_counts: list[dict[tuple[str, int], int]] = [{} for _ in nows]
    for wid, key, n in past:
        i, k = divmod(wid, rule.history + 1)
        past_counts[i][(key, k)] = n
    out = []
    for i, now in enumerate(nows):
        keys = set(now_counts[i]) | {key for key, _ in past_counts[i]}
        if rule.scope is Scope.GLOBAL:
            keys.add(GLOBAL_KEY)
        counts = tuple(
            ScopeCount(
                key,
                now_counts[i].get(key, 0),
                tuple(past_counts[i].get((key, k), 0) for k in available[i]),
            )
            for key in sorted(keys)
        )
        out.append(Sample(now, counts))
    return out


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

    def top_of(column: str) -> tuple[Count, ...]:
        rows = con.execute(
            f"SELECT coalesce({column}, '(none)') AS v, count(*) AS n FROM conflicts"
            f" WHERE ts > $start AND ts <= $end AND {key_sql(scope)} = $key"
            " GROUP BY 1 ORDER BY n DESC, v LIMIT $top",
            {"start": start, "end": end, "key": key, "top": top},
        ).fetchall()
        return tuple(Count(str(v), int(n)) for v, n in rows)

    endpoints = top_of("endpoint") if scope is not Scope.ENDPOINT else ()
    return Breakdown(top_of("cause") if scope is not Scope.CAUSE else (), top_of("path"), endpoints)
