"""Stored history -> what the rules would have done: a replay that sends nothing, writes nothing.

The rollups and 409s of the span (plus the history the rules look back on) are copied through the
read API into an in-memory DuckDB (`ingest.alert_counts.copy_for_backtest`), and the very same
counting, detection, lifecycle, incident grouping and message code as the live engine runs at
every step. Steps that fall inside a minute also copy the request rows, so no step sees the rest
of its minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from conflictradar.alerts.config import AlertConfig
from conflictradar.alerts.counts import Sample, floor_minute, sample_rule
from conflictradar.alerts.detectors import baseline_of, fire_rate
from conflictradar.alerts.evaluation import Event, compose, step_rule
from conflictradar.alerts.incidents import Incident, advance_incidents, channel_groups
from conflictradar.alerts.lifecycle import AlertState, Track
from conflictradar.alerts.notifications import AlertItem, Notification
from conflictradar.alerts.rules import DetectorKind, Rule
from conflictradar.ingest.alert_counts import copy_for_backtest, first_minute
from conflictradar.ingest.reader import Reader

MAX_STEPS = 200_000
MAX_SERIES_PER_RULE = 8


@dataclass(frozen=True)
class Fired:
    """One alert that would have fired: a line of `alerts backtest --format json`."""

    rule: str
    scope: str
    key: str | None
    fired_at: datetime
    resolved_at: datetime | None
    value: float | None  # the 409 rate when it fired
    baseline: float | None  # the baseline rate it was judged against
    count: int
    requests: int
    reason: str


@dataclass(frozen=True)
class Backtest:
    since: datetime
    until: datetime
    step: timedelta
    events: tuple[Event, ...]
    notifications: tuple[Notification, ...]
    # rule, key, ts, value (409 rate), baseline (rate), fire_level (the rate that would fire)
    series: pl.DataFrame

    def fired(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.state is AlertState.FIRING and not e.repeat)

    def alerts(self) -> list[Fired]:
        """Each firing paired with the resolve that ended it (None: still firing at the end)."""
        out: list[Fired] = []
        open_at: dict[tuple[str, str], int] = {}
        for e in self.events:
            ident = (e.rule, e.scope_value)
            if e.state is AlertState.FIRING and not e.repeat:
                open_at[ident] = len(out)
                key = e.scope_value if e.scope_value or e.scope.value != "global" else None
                out.append(Fired(e.rule, e.scope.value, key, e.ts, None, e.rate, e.baseline,
                                 e.value, e.requests, e.message))  # fmt: skip
            elif e.state is AlertState.RESOLVED and ident in open_at:
                i = open_at.pop(ident)
                f = out[i]
                out[i] = Fired(f.rule, f.scope, f.key, f.fired_at, e.ts, f.value, f.baseline,
                               f.count, f.requests, f.reason)  # fmt: skip
        return out


def steps(since: datetime, until: datetime, step: timedelta) -> list[datetime]:
    count = int((until - since) / step) + 1
    if count > MAX_STEPS:
        raise ValueError(f"{count} steps is too many (at most {MAX_STEPS}); use a larger step")
    return [since + i * step for i in range(count)]


def lookback(rule: Rule) -> timedelta:
    return timedelta(seconds=rule.step_s * rule.history + 2 * rule.window_s + 120)


def _series_rows(
    rule: Rule, samples: list[Sample], keys: list[str]
) -> Iterator[tuple[object, ...]]:
    for sample in samples:
        for key in keys:
            c = sample.get(key)
            base = baseline_of(c.history)
            baseline = level = None
            enough = len(c.history) >= rule.min_history
            if rule.detector is DetectorKind.BASELINE and base is not None and enough:
                baseline = base.rate
                level = fire_rate(rule, base, c.now.requests)
            rate = c.now.rate if c.now.requests > 0 else None
            yield rule.name, key, sample.now, rate, baseline, level


def run(
    config: AlertConfig, reader: Reader, since: datetime, until: datetime, step: timedelta
) -> Backtest:
    """Replay every rule over [since, until] at `step`."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    nows = steps(since, until, step)
    span = max((lookback(r) for r in config.rules), default=timedelta(0))
    rows = any(floor_minute(n) != n for n in nows)
    mem = copy_for_backtest(reader, since - span, until, rows=rows)
    groups = channel_groups(config.rules)
    try:
        first = first_minute(mem)
        samples = {r.name: sample_rule(mem, r, nows, first) for r in config.rules}
        tracks: dict[str, dict[str, Track]] = {r.name: {} for r in config.rules}
        incidents: dict[str, Incident] = {}
        events: list[Event] = []
        notifications: list[Notification] = []
        for i, now in enumerate(nows):
            changes: list[tuple[str, AlertItem]] = []
            for rule in config.rules:
                updated, transitions = step_rule(rule, tracks[rule.name], samples[rule.name][i])
                tracks[rule.name] = {
                    k: t
                    for k, t in updated.items()
                    if t.state is not AlertState.INACTIVE or t.fire_starts
                }
                if transitions:
                    evs, items = compose(mem, rule, transitions, now, config.dashboard_url)
                    events.extend(evs)
                    changes.extend((groups.of(rule), item) for item in items)
            incidents, messages = advance_incidents(incidents, changes, now, config, groups)
            notifications.extend(n for _, n in messages)
        rows_out: list[tuple[object, ...]] = []
        for rule in config.rules:
            fired = [e.scope_value for e in events
                     if e.rule == rule.name and e.state is AlertState.FIRING]  # fmt: skip
            keys = list(dict.fromkeys(fired))[:MAX_SERIES_PER_RULE]
            if not keys:
                busiest = max(
                    (c for s in samples[rule.name] for c in s.counts),
                    key=lambda c: c.now.conflicts,
                    default=None,
                )
                keys = [busiest.key] if busiest is not None else []
            rows_out.extend(_series_rows(rule, samples[rule.name], keys))
    finally:
        mem.close()
    series = pl.DataFrame(
        rows_out,
        schema={
            "rule": pl.String,
            "key": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "value": pl.Float64,
            "baseline": pl.Float64,
            "fire_level": pl.Float64,
        },
        orient="row",
    )
    events.sort(key=lambda e: (e.ts, e.rule, e.scope_value))
    return Backtest(since, until, step, tuple(events), tuple(notifications), series)
