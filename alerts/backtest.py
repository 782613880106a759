"""Stored history -> what the rules would have done: a replay that sends nothing, writes nothing.

The conflicts and per-minute rollups of the span (plus the history the rules look back on) are
copied through the read API into an in-memory DuckDB, and the very same counting, detection,
lifecycle and message code as the live engine runs at every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from alerts.config import AlertConfig
from alerts.counts import Sample, sample_rule
from alerts.detectors import MIN_HISTORY, robust_spread
from alerts.evaluation import Event, compose, step_rule
from alerts.lifecycle import AlertState, Track
from alerts.notifications import Notification
from alerts.rules import DetectorKind, Rule
from ingest.reader import Reader

MAX_STEPS = 200_000
MAX_SERIES_PER_RULE = 8


@dataclass(frozen=True)
class Backtest:
    since: datetime
    until: datetime
    step: timedelta
    events: tuple[Event, ...]
    notifications: tuple[Notification, ...]
    # rule, key, ts, value, baseline, fire_level (the count that would fire at that time)
    series: pl.DataFrame

    def fired(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.state is AlertState.FIRING and not e.repeat)


def steps(since: datetime, until: datetime, step: timedelta) -> list[datetime]:
    count = int((until - since) / step) + 1
    if count > MAX_STEPS:
        raise ValueError(f"{count} steps is too many (at most {MAX_STEPS}); use a larger step")
    return [since + i * step for i in range(count)]


def lookback(rule: Rule) -> timedelta:
    return timedelta(seconds=rule.step_s * rule.history + rule.window_s + 120)


def load_history(
    reader: Reader, since: datetime, until: datetime, span: timedelta
) -> duckdb.DuckDBPyConnection:
    """An in-memory database with the conflicts, conflict_minutes and request_minutes needed."""
    lo = since - span
    mem = duckdb.connect(":memory:")
    mem.execute("SET TimeZone = 'UTC'")
    tables = (
        (
            "conflicts",
            "SELECT ts, endpoint, cause, path FROM conflicts WHERE ts > ? AND ts <= ?",
            [lo, until],
        ),
        (
            "conflict_minutes",
            "SELECT minute, endpoint, cause, sum(conflicts) AS conflicts"
            " FROM conflict_minutes WHERE minute >= ? AND minute <= ? GROUP BY ALL",
            [lo, until],
        ),
        ("request_minutes", "SELECT min(minute) AS minute FROM request_minutes", None),
    )
    for name, sql, params in tables:
        arrow = reader.query(sql, params)
        mem.register("_src", arrow)
        mem.execute(f"CREATE TABLE {name} AS SELECT * FROM _src")
        mem.unregister("_src")
    return mem


def _data_start(mem: duckdb.DuckDBPyConnection) -> datetime | None:
    row = mem.execute("SELECT min(minute) FROM request_minutes").fetchone()
    return row[0] if row else None


def _series_rows(
    rule: Rule, samples: list[Sample], keys: list[str]
) -> Iterator[tuple[object, ...]]:
    for sample in samples:
        for key in keys:
            c = sample.get(key)
            baseline = level = None
            if rule.detector is DetectorKind.BASELINE and len(c.history) >= MIN_HISTORY:
                baseline, spread = robust_spread(c.history)
                level = max(float(rule.min_count), baseline + rule.deviation * spread)
            elif rule.detector is DetectorKind.THRESHOLD or len(c.history) < MIN_HISTORY:
                level = float(rule.min_count)
            yield rule.name, key, sample.now, c.value, baseline, level


def run(
    config: AlertConfig, reader: Reader, since: datetime, until: datetime, step: timedelta
) -> Backtest:
    """Replay every rule over [since, until] at `step`."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    nows = steps(since, until, step)
    span = max((lookback(r) for r in config.rules), default=timedelta(0))
    mem = load_history(reader, since, until, span)
    try:
        first = _data_start(mem)
        events: list[Event] = []
        notifications: list[Notification] = []
        rows: list[tuple[object, ...]] = []
        for rule in config.rules:
            samples = sample_rule(mem, rule, nows, first)
            tracks: dict[str, Track] = {}
            rule_events: list[Event] = []
            for sample in samples:
                updated, transitions = step_rule(rule, tracks, sample)
                tracks = {
                    k: t
                    for k, t in updated.items()
                    if t.state is not AlertState.INACTIVE or t.fire_starts
                }
                if transitions:
                    evs, notification = compose(
                        mem, rule, transitions, sample.now, config.dashboard_url
                    )
                    rule_events.extend(evs)
                    if notification is not None:
                        notifications.append(notification)
            keys = list(
                dict.fromkeys(e.scope_value for e in rule_events if e.state is AlertState.FIRING)
            )[:MAX_SERIES_PER_RULE]
            if not keys:
                busiest = max(
                    (c for s in samples for c in s.counts), key=lambda c: c.value, default=None
                )
                keys = [busiest.key] if busiest is not None else []
            rows.extend(_series_rows(rule, samples, keys))
            events.extend(rule_events)
    finally:
        mem.close()
    series = pl.DataFrame(
        rows,
        schema={
            "rule": pl.String,
            "key": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "value": pl.Int64,
            "baseline": pl.Float64,
            "fire_level": pl.Float64,
        },
        orient="row",
    )
    events.sort(key=lambda e: (e.ts, e.rule, e.scope_value))
    return Backtest(since, until, step, tuple(events), tuple(notifications), series)
