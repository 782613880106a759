"""Notification -> Alertmanager: the body for `POST /api/v2/alerts` of a real Alertmanager.

Posting there hands routing, grouping, inhibition and silences to Alertmanager. An alert's
identity is its label set, so posting the same alert twice is harmless: Alertmanager merges it.
That makes this channel safe to re-send after a crash left a delivery's outcome unknown.
"""

from __future__ import annotations

from typing import Any

from conflictradar.alerts.notifications import Notification
from conflictradar.alerts.webhook import alertmanager_alert

ALERTS_PATH = "/api/v2/alerts"


def alertmanager_payload(n: Notification) -> list[dict[str, Any]]:
    """The postable alerts: labels, annotations, startsAt, endsAt, generatorURL."""
    return [alertmanager_alert(a, a.refresh_s) for a in n.alerts]


def alerts_url(base: str) -> str:
    """`http://am:9093` or `http://am:9093/prefix/` -> `.../api/v2/alerts`."""
    return base.rstrip("/") + ALERTS_PATH
