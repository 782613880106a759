"""Lifecycle <-> store: alert tracks (`alert_state`), open incidents (`alert_incidents`) and
the `alert_events` record.

Only tracks worth remembering are stored: pending, firing, recently resolved, or with recent
starts (flap memory). An inactive alert with no history is simply absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import duckdb

from conflictradar.alerts.evaluation import Event
from conflictradar.alerts.incidents import Incident, items_from_json
from conflictradar.alerts.lifecycle import AlertState, Track
from conflictradar.alerts.rules import Rule, Scope

# A resolved alert stays visible in `alert_state` this long after resolving.
KEEP_RESOLVED = timedelta(days=1)

_COLUMNS = (
    "rule, scope, scope_value, state, since, active_since, quiet_since, firing_since,"
    " last_notified, fire_starts, value, baseline, score, flapping"
)


def load_tracks(con: duckdb.DuckDBPyConnection, rule: Rule) -> dict[str, Track]:
    """The remembered alerts of `rule` (same name and scope), by scope value."""
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM alert_state WHERE rule = ? AND scope = ?",
        [rule.name, rule.scope.value],
    ).fetchall()
    out = {}
    for r in rows:
        out[r[2]] = Track(
            rule=r[0],
            scope=Scope(r[1]),
            key=r[2],
            state=AlertState(r[3]),
            since=r[4],
            active_since=r[5],
            quiet_since=r[6],
            firing_since=r[7],
            last_notified=r[8],
            fire_starts=tuple(r[9] or ()),
            value=int(r[10] or 0),
            baseline=r[11],
            score=r[12],
            flapping=bool(r[13]),
        )
    return out


def worth_keeping(t: Track, now: datetime) -> bool:
    if t.state in (AlertState.PENDING, AlertState.FIRING) or t.fire_starts:
        return True
    return t.state is AlertState.RESOLVED and t.since is not None and now - t.since < KEEP_RESOLVED


def save_tracks(
    con: duckdb.DuckDBPyConnection, rule: Rule, tracks: Iterable[Track], now: datetime
) -> None:
    """Replace the stored alerts of `rule` with `tracks` (those worth keeping)."""
    con.execute(
        "DELETE FROM alert_state WHERE rule = ? AND scope = ?", [rule.name, rule.scope.value]
    )
    rows = [
        [
            t.rule,
            t.scope.value,
            t.key,
            t.state.value,
            t.since,
            t.active_since,
            t.quiet_since,
            t.firing_since,
            t.last_notified,
            list(t.fire_starts),
            t.value,
            t.baseline,
            t.score,
            t.flapping,
            now,
        ]
        for t in tracks
        if worth_keeping(t, now)
    ]
    if rows:
        con.executemany(
            f"INSERT INTO alert_state ({_COLUMNS}, updated) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def drop_unknown_rules(con: duckdb.DuckDBPyConnection, rules: Iterable[Rule]) -> None:
    """Forget the state of rules that are no longer configured (their events stay)."""
    names = [f"{r.name}\x00{r.scope.value}" for r in rules]
    con.execute(
        "DELETE FROM alert_state WHERE NOT list_contains(?, rule || chr(0) || scope)", [names]
    )


def record_events(con: duckdb.DuckDBPyConnection, events: Iterable[Event]) -> None:
    rows = [
        [
            e.id,
            e.ts,
            e.rule,
            e.scope.value,
            e.scope_value,
            e.state.value,
            e.previous.value,
            e.repeat,
            e.flapping,
            e.value,
            e.baseline,
            e.score,
            e.window_s,
            e.message,
            e.notification_id,
        ]
        for e in events
    ]
    if rows:
        con.executemany(
            "INSERT INTO alert_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )


def firing_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many alerts (rule x scope value) are firing right now."""
    row = con.execute(
        "SELECT count(*) FROM alert_state WHERE state = ?", [AlertState.FIRING.value]
    ).fetchone()
    return int(row[0]) if row else 0


def load_incidents(con: duckdb.DuckDBPyConnection) -> dict[str, Incident]:
    """The open incidents, by group."""
    rows = con.execute(
        "SELECT grp, id, label, opened, announced, last_sent, told, items FROM alert_incidents"
    ).fetchall()
    return {
        r[0]: Incident(
            r[0], r[1], r[2], r[3], r[4], r[5], items_from_json(r[7]), frozenset(r[6] or ())
        )
        for r in rows
    }


def save_incidents(
    con: duckdb.DuckDBPyConnection, incidents: Iterable[Incident], now: datetime
) -> None:
    """Replace the stored open incidents."""
    con.execute("DELETE FROM alert_incidents")
    rows = [
        [
            i.group,
            i.id,
            i.label,
            i.opened,
            i.announced,
            i.last_sent,
            sorted(i.told),
            i.items_json(),
            now,
        ]
        for i in incidents
    ]
    if rows:
        con.executemany("INSERT INTO alert_incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
