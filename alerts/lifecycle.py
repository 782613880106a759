"""Verdicts -> transitions: the alert lifecycle per (rule, scope value). Pure; `now` is passed in.

    inactive/resolved --active--> pending --active for `for`--> firing
    firing --quiet for `resolve_after`--> resolved;  firing --`repeat_interval`--> firing again
    (`for` = 0 goes from inactive/resolved straight to firing)

Firing, re-firing after `repeat_interval` and resolving notify; pending and a pending alert that
clears are recorded but say nothing. Flap damping: an alert that started firing `flap_count` times
within `flap_window` is flapping and resolves only after the longer `flap_resolve_after` of quiet,
so an on/off condition yields a bounded number of messages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from conflictradar.alerts.detectors import Verdict
from conflictradar.alerts.rules import Rule, Scope


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Track:
    """What the lifecycle remembers about one (rule, scope value); persisted in `alert_state`."""

    rule: str
    scope: Scope
    key: str
    state: AlertState = AlertState.INACTIVE
    since: datetime | None = None  # entered `state`
    active_since: datetime | None = None  # detector true continuously since
    quiet_since: datetime | None = None  # detector false continuously since (while firing)
    firing_since: datetime | None = None
    last_notified: datetime | None = None
    fire_starts: tuple[datetime, ...] = ()  # within the flap window
    value: int = 0
    baseline: float | None = None
    score: float | None = None
    flapping: bool = False


@dataclass(frozen=True)
class Change:
    """One transition of a track (`repeat`: still firing, notified again)."""

    previous: AlertState
    state: AlertState
    repeat: bool = False

    @property
    def notify(self) -> bool:
        return self.state in (AlertState.FIRING, AlertState.RESOLVED)


def _elapsed(now: datetime, since: datetime | None, seconds: float) -> bool:
    return since is not None and now - since >= timedelta(seconds=seconds)


def _fire(track: Track, now: datetime, rule: Rule) -> tuple[Track, Change]:
    starts = (*track.fire_starts, now)
    fired = replace(
        track,
        state=AlertState.FIRING,
        since=now,
        firing_since=now,
        last_notified=now,
        quiet_since=None,
        fire_starts=starts,
        flapping=len(starts) >= rule.flap_count,
    )
    return fired, Change(track.state, AlertState.FIRING)


def advance(
    track: Track, verdict: Verdict, now: datetime, rule: Rule
) -> tuple[Track, Change | None]:
    """The track after one evaluation, and the transition it made (None: no change)."""
    cutoff = now - timedelta(seconds=rule.flap_window_s)
    t = replace(
        track,
        value=verdict.value,
        baseline=verdict.baseline,
        score=verdict.score,
        fire_starts=tuple(s for s in track.fire_starts if s > cutoff),
    )
    if verdict.active:
        t = replace(t, quiet_since=None, active_since=t.active_since or now)
        if t.state in (AlertState.INACTIVE, AlertState.RESOLVED):
            if rule.for_s <= 0:
                return _fire(t, now, rule)
            pending = replace(t, state=AlertState.PENDING, since=now, active_since=now)
            return pending, Change(t.state, AlertState.PENDING)
        if t.state is AlertState.PENDING:
            if _elapsed(now, t.active_since, rule.for_s):
                return _fire(t, now, rule)
            return t, None
        if _elapsed(now, t.last_notified, rule.repeat_interval_s):
            return replace(t, last_notified=now), Change(t.state, t.state, repeat=True)
        return t, None
    t = replace(t, active_since=None)
    if t.state is AlertState.PENDING:
        return replace(t, state=AlertState.INACTIVE, since=now), Change(
            t.state, AlertState.INACTIVE
        )
    if t.state is AlertState.FIRING:
        t = replace(t, quiet_since=t.quiet_since or now)
        hold = rule.flap_resolve_after_s if t.flapping else rule.resolve_after_s
        if _elapsed(now, t.quiet_since, hold):
            resolved = replace(t, state=AlertState.RESOLVED, since=now, last_notified=now)
            return resolved, Change(t.state, AlertState.RESOLVED)
    return t, None
