"""Evaluation -> channels: what a notification says, independent of any channel's format.

A notification lists the alerts of one incident (see `alerts.incidents`: alerts of any rule that
fire together make one message). It is stored as JSON in `alert_notifications` when it is
queued, so every retry, and a retry after a restart, renders the same content.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from conflictradar.alerts.rules import Scope
from conflictradar.ingest.alert_counts import Count


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def iso(ts: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second or millisecond."""
    ts = ts.astimezone(UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond // 1000:03d}"
    return text + "Z"


def _minute(ts: datetime, *, up: bool) -> str:
    """The dashboard's time widgets take UTC minutes (`2025-06-02T13:05`)."""
    ts = ts.astimezone(UTC)
    floor = ts.replace(second=0, microsecond=0)
    if up and floor < ts:
        floor += timedelta(minutes=1)
    return floor.strftime("%Y-%m-%dT%H:%M")


def dashboard_link(base: str, start: datetime, end: datetime, scope: Scope, key: str) -> str:
    """The dashboard filtered to the scope and time.

    `?range=custom&from=...&to=...&endpoint=...` or `&cause=...`: the query parameters the
    dashboard's sidebar widgets are bound to; times are UTC minutes, widened to whole minutes.
    """
    params = {"range": "custom", "from": _minute(start, up=False), "to": _minute(end, up=True)}
    if scope is Scope.ENDPOINT:
        params["endpoint"] = key
    elif scope is Scope.CAUSE:
        params["cause"] = key
    return f"{base.rstrip('/')}/?{urlencode(params)}"


@dataclass(frozen=True)
class AlertItem:
    """One alert (rule x scope value) in a notification."""

    rule: str
    scope: Scope
    scope_value: str
    status: Status
    value: int
    baseline: float | None
    score: float | None
    window_s: float
    min_count: int
    severity: str
    starts_at: datetime
    ends_at: datetime | None
    evaluated_at: datetime
    reason: str
    link: str
    causes: tuple[Count, ...] = ()
    resources: tuple[Count, ...] = ()
    endpoints: tuple[Count, ...] = ()
    repeat: bool = False
    flapping: bool = False
    # How long a receiver that expires alerts (Alertmanager) should hold this one as firing
    # without hearing from us again: repeat_interval plus a margin.
    refresh_s: float = 0.0
    rate: float | None = None  # the window's 409 rate (`baseline` is then a rate too)
    requests: int = 0

    @property
    def subject(self) -> str:
        """`all 409s`, `endpoint /orders/{id}`, `cause concurrent_update` (user data inside)."""
        if self.scope is Scope.GLOBAL:
            return "all 409s"
        return f"{self.scope.value} {self.scope_value}"

    @property
    def labels(self) -> dict[str, str]:
        """Alertmanager-style labels: identity of the alert (same labels = same alert)."""
        out = {
            "alertname": self.rule,
            "scope": self.scope.value,
            "severity": self.severity,
            "source": "conflictradar",
        }
        if self.scope is Scope.ENDPOINT:
            out["endpoint"] = self.scope_value
        elif self.scope is Scope.CAUSE:
            out["cause"] = self.scope_value
        return out


@dataclass(frozen=True)
class Notification:
    id: str
    rule: str
    created: datetime
    alerts: tuple[AlertItem, ...]
    link: str
    test: bool = False

    @property
    def status(self) -> Status:
        """Firing while any alert in it fires (Alertmanager's group status)."""
        firing = any(a.status is Status.FIRING for a in self.alerts)
        return Status.FIRING if firing else Status.RESOLVED

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_encode, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        raw = json.loads(text)
        alerts = tuple(item_from_dict(a) for a in raw["alerts"])
        return cls(raw["id"], raw["rule"], _ts(raw["created"]), alerts, raw["link"], raw["test"])


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _counts(raw: list[dict[str, Any]]) -> tuple[Count, ...]:
    return tuple(Count(c["name"], int(c["n"])) for c in raw)


def item_from_dict(raw: dict[str, Any]) -> AlertItem:
    return AlertItem(
        rule=raw["rule"],
        scope=Scope(raw["scope"]),
        scope_value=raw["scope_value"],
        status=Status(raw["status"]),
        value=raw["value"],
        baseline=raw["baseline"],
        score=raw["score"],
        window_s=raw["window_s"],
        min_count=raw["min_count"],
        severity=raw["severity"],
        starts_at=_ts(raw["starts_at"]),
        ends_at=_ts(raw["ends_at"]) if raw["ends_at"] else None,
        evaluated_at=_ts(raw["evaluated_at"]),
        reason=raw["reason"],
        link=raw["link"],
        causes=_counts(raw["causes"]),
        resources=_counts(raw["resources"]),
        endpoints=_counts(raw["endpoints"]),
        repeat=raw["repeat"],
        flapping=raw["flapping"],
        refresh_s=raw.get("refresh_s", 0.0),
        rate=raw.get("rate"),
        requests=int(raw.get("requests") or 0),
    )


TEST_RULE = "conflictradar test notification"


def make_test_notification(notification_id: str, now: datetime, dashboard_url: str) -> Notification:
    """A clearly marked test: it says it is a test in the title, labels and text."""
    link = dashboard_link(dashboard_url, now, now, Scope.GLOBAL, "")
    item = AlertItem(
        rule=TEST_RULE,
        scope=Scope.GLOBAL,
        scope_value="",
        status=Status.FIRING,
        value=0,
        baseline=None,
        score=None,
        window_s=60.0,
        min_count=0,
        severity="none",
        starts_at=now,
        ends_at=None,
        evaluated_at=now,
        link=link,
        refresh_s=300.0,
        reason="TEST: this is a test notification from `conflictradar alerts test`; "
        "no 409 spike is happening. If you can read this, the channel works.",
    )
    return Notification(notification_id, TEST_RULE, now, (item,), link, test=True)
