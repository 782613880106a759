"""Counts -> detectors -> lifecycle -> events and alert items, for one rule at one time.

Shared by the live engine (which persists the result) and the backtest (which only prints it),
so a backtest shows exactly what the engine would have done.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import duckdb

from conflictradar.alerts.counts import Sample
from conflictradar.alerts.detectors import Verdict, can_fire, detect_windows
from conflictradar.alerts.lifecycle import AlertState, Change, Track, advance
from conflictradar.alerts.notifications import AlertItem, Notification, Status, dashboard_link
from conflictradar.alerts.rules import Rule, Scope
from conflictradar.ingest.alert_counts import breakdown


@dataclass(frozen=True)
class Event:
    """One state change of one alert; a row of `alert_events`, and what `evaluate` returns."""

    id: str
    ts: datetime
    rule: str
    scope: Scope
    scope_value: str
    state: AlertState
    previous: AlertState
    repeat: bool
    flapping: bool
    value: int
    baseline: float | None
    score: float | None
    window_s: float
    message: str
    notification_id: str | None = None
    rate: float | None = None  # the window's 409 rate; `baseline` is the baseline rate
    requests: int = 0

    @property
    def notify(self) -> bool:
        return self.state in (AlertState.FIRING, AlertState.RESOLVED)


@dataclass(frozen=True)
class Transition:
    track: Track  # after the change
    change: Change
    verdict: Verdict


def step_rule(
    rule: Rule, tracks: Mapping[str, Track], sample: Sample
) -> tuple[dict[str, Track], list[Transition]]:
    """Advance every alert of `rule` (scope values seen now or remembered) by one evaluation.
    A value without an alert that cannot fire now (`can_fire`) is left out of what it returns:
    judged, it would only be an inactive track, which nobody keeps."""
    keys = sorted({c.key for c in sample.counts} | set(tracks))
    updated: dict[str, Track] = {}
    transitions = []
    for key in keys:
        counted = sample.get(key)
        if key not in tracks and not can_fire(rule, counted):
            # Inactive whatever its history, with nothing remembered: it would stay an
            # inactive track, which neither the engine nor a backtest keeps.
            continue
        verdict = detect_windows(rule, counted)
        before = tracks.get(key) or Track(rule.name, rule.scope, key)
        after, change = advance(before, verdict, sample.now, rule)
        updated[key] = after
        if change is not None:
            transitions.append(Transition(after, change, verdict))
    return updated, transitions


def _message(rule: Rule, t: Transition) -> str:
    subject = "all 409s" if t.track.scope is Scope.GLOBAL else f"{rule.scope.value} {t.track.key}"
    state = t.change.state.value + (" (repeat)" if t.change.repeat else "")
    flap = "; flapping" if t.track.flapping and t.change.state is AlertState.FIRING else ""
    if t.change.state is AlertState.PENDING:
        tail = f"; fires if it lasts {rule.for_s:g} s"
    elif t.change.state is AlertState.INACTIVE:
        tail = "; cleared before the pending period ended"
    else:
        tail = ""
    return f"{rule.name}: {subject} {state}: {t.verdict.reason}{tail}{flap}"


def compose(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    transitions: list[Transition],
    now: datetime,
    dashboard_url: str,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> tuple[list[Event], list[AlertItem]]:
    """Events for every transition, and an alert item for each that notifies."""
    window = timedelta(seconds=rule.window_s)
    items = []
    for t in transitions:
        if not t.change.notify:
            continue
        resolved = t.change.state is AlertState.RESOLVED
        starts = t.track.firing_since or now
        parts = breakdown(con, rule.scope, t.track.key, now - window, now, rule.top)
        items.append(
            AlertItem(
                rule=rule.name,
                scope=rule.scope,
                scope_value=t.track.key,
                status=Status.RESOLVED if resolved else Status.FIRING,
                value=t.verdict.value,
                baseline=t.verdict.baseline,
                score=t.verdict.score,
                window_s=rule.window_s,
                min_count=rule.min_count,
                severity=rule.severity,
                starts_at=starts,
                ends_at=now if resolved else None,
                evaluated_at=now,
                reason=t.verdict.reason,
                link=dashboard_link(
                    dashboard_url, min(starts, now) - window, now, rule.scope, t.track.key
                ),
                causes=parts.causes,
                resources=parts.resources,
                endpoints=parts.endpoints,
                repeat=t.change.repeat,
                flapping=t.track.flapping,
                refresh_s=rule.repeat_interval_s + rule.window_s,
                rate=t.verdict.rate,
                requests=t.verdict.requests,
            )
        )
    events = [
        Event(
            id=new_id(),
            ts=now,
            rule=rule.name,
            scope=rule.scope,
            scope_value=t.track.key,
            state=t.change.state,
            previous=t.change.previous,
            repeat=t.change.repeat,
            flapping=t.track.flapping,
            value=t.verdict.value,
            baseline=t.verdict.baseline,
            score=t.verdict.score,
            window_s=rule.window_s,
            message=_message(rule, t),
            rate=t.verdict.rate,
            requests=t.verdict.requests,
        )
        for t in transitions
    ]
    return events, items


def with_notifications(events: list[Event], notifications: list[Notification]) -> list[Event]:
    """Stamp each event with the message (sent at the same evaluation) that lists its alert."""
    sent = {(a.rule, a.scope_value): n.id for n in notifications for a in n.alerts}
    return [
        replace(e, notification_id=sent.get((e.rule, e.scope_value))) if e.notify else e
        for e in events
    ]
