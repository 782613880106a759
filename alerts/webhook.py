"""Notification -> generic webhook: Alertmanager's webhook v4 JSON, optionally HMAC-signed.

Receivers written for Alertmanager (PagerDuty bridges, chat bots, ...) take it unchanged. The
signature header is `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>` (Stripe's
scheme): the timestamp is signed too, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

from conflictradar.alerts.detectors import pct, window_text
from conflictradar.alerts.notifications import AlertItem, Notification, Status, iso

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's alert fingerprint: FNV-1a 64 over sorted label names and values."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _joined(counts: tuple[Any, ...]) -> str:
    return ", ".join(f"{c.name} ({c.n})" for c in counts)


def alert_annotations(a: AlertItem) -> dict[str, str]:
    """Human-readable facts about the alert (all strings, as Alertmanager requires)."""
    window = window_text(a.window_s)
    summary = f"{a.value} 409s in {window} on {a.subject}"
    if a.rate is not None:
        summary += f" ({pct(a.rate)} of {a.requests} requests)"
    if a.baseline is not None:
        summary += f" (baseline rate {pct(a.baseline)})"
    out = {
        "summary": summary,
        "description": a.reason,
        "value": str(a.value),
        "window": window,
        "dashboard": a.link,
    }
    if a.rate is not None:
        out["rate"] = f"{a.rate:.4g}"
    if a.baseline is not None:
        out["baseline"] = f"{a.baseline:.4g}"
    if a.score is not None:
        out["deviation"] = f"{a.score:.2f}"
    for key, counts in (
        ("top_causes", a.causes),
        ("top_resources", a.resources),
        ("top_endpoints", a.endpoints),
    ):
        if counts:
            out[key] = _joined(counts)
    if a.flapping:
        out["flapping"] = "true"
    return out


def alertmanager_alert(a: AlertItem, refresh_s: float = 0.0) -> dict[str, Any]:
    """One alert in Alertmanager's shape (`endsAt` per `refresh_s` when firing, see below)."""
    if a.status is Status.RESOLVED and a.ends_at is not None:
        ends = iso(a.ends_at)
    elif refresh_s > 0:
        # The Alertmanager API expires a firing alert at endsAt unless it is re-sent; we re-send
        # only on repeat_interval, so it holds until then (plus a margin).
        ends = iso(a.evaluated_at + timedelta(seconds=refresh_s))
    else:
        ends = ZERO_TIME
    return {
        "labels": a.labels,
        "annotations": alert_annotations(a),
        "startsAt": iso(a.starts_at),
        "endsAt": ends,
        "generatorURL": a.link,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def group_key(n: Notification) -> str:
    name = n.rule.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{}}:{{alertname="{name}"}}'


def webhook_payload(n: Notification, receiver: str, external_url: str) -> dict[str, Any]:
    """The Alertmanager webhook v4 body for a notification sent to `receiver` (channel name)."""
    alerts = []
    for a in n.alerts:
        alert = {"status": a.status.value, **alertmanager_alert(a)}
        alert["fingerprint"] = fingerprint(a.labels)
        alerts.append(alert)
    return {
        "version": "4",
        "groupKey": group_key(n),
        "truncatedAlerts": 0,
        "status": n.status.value,
        "receiver": receiver,
        "groupLabels": {"alertname": n.rule},
        "commonLabels": _common([a.labels for a in n.alerts]),
        "commonAnnotations": _common([alert_annotations(a) for a in n.alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def signature(key: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    header: str, body: bytes, key: bytes, now: int, tolerance_s: int = 300
) -> bool:
    """For receivers: whether `header` signs `body` with `key`, at most `tolerance_s` old."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        ts = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    expected = signature(key, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
