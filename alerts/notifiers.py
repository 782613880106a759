"""Outbox -> HTTP: render a notification for its channel, POST it once, judge the response.

This is the only module that talks to the network. Each call has a timeout. The judgement is
STYLE's: 2xx delivered; 5xx, 429, 408 and timeouts or connection failures are retried (429's and
503's `Retry-After` honoured); any other answer is final. Error texts are redacted of every secret.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from conflictradar.alerts.alertmanager import alertmanager_payload, alerts_url
from conflictradar.alerts.channels import Channel, ChannelKind
from conflictradar.alerts.notifications import Notification
from conflictradar.alerts.secrets import Secret, redact, without_userinfo
from conflictradar.alerts.slack import slack_payload
from conflictradar.alerts.webhook import signature, webhook_payload

USER_AGENT = "conflictradar-alerts/0.1"
RETRY_STATUSES = frozenset({408, 429})


class _RedactingFilter(logging.Filter):
    """httpx logs every request's full URL at INFO; for a Slack webhook the URL is the secret."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[Secret] = set()
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self.lock:
            secrets = tuple(self.secrets)
        if secrets:
            record.msg = redact(record.getMessage(), secrets)
            record.args = None
        return True


_FILTER = _RedactingFilter()


def guard_logs(secrets: tuple[Secret, ...]) -> None:
    """Redact these secrets from httpx's and httpcore's log records (installed once)."""
    with _FILTER.lock:
        _FILTER.secrets.update(secrets)
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@dataclass(frozen=True)
class HttpRequest:
    url: Secret
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Outcome:
    """What one attempt found out; `error` is redacted and has no secret in it."""

    delivered: bool
    retry: bool
    status: int | None
    error: str | None
    retry_after_s: float | None
    elapsed_s: float


def disposition(status: int) -> tuple[bool, bool]:
    """(delivered, retry) for an HTTP status code."""
    if 200 <= status < 300:
        return True, False
    return False, status >= 500 or status in RETRY_STATUSES


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def build_request(
    channel: Channel, n: Notification, key: str, now: datetime, external_url: str
) -> HttpRequest:
    """The exact request for `channel`; `key` (the delivery's idempotency key) rides along."""
    if channel.url is None:
        raise ValueError(f"channel {channel.name} has no URL ({channel.url_env} is not set)")
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
        ("Idempotency-Key", key),
        ("X-Conflictradar-Notification", n.id),
    ]
    url = channel.url
    if channel.kind is ChannelKind.SLACK:
        body = _json(slack_payload(n))
    elif channel.kind is ChannelKind.WEBHOOK:
        body = _json(webhook_payload(n, channel.name, external_url))
        if channel.secret is not None:
            sig = signature(channel.secret.reveal().encode(), body, int(now.timestamp()))
            headers.append((channel.signature_header, sig))
    else:
        body = _json(alertmanager_payload(n))
        url = Secret(alerts_url(channel.url.reveal()))
        if channel.secret is not None:
            headers.append(("Authorization", f"Bearer {channel.secret.reveal()}"))
    url, sent = without_userinfo(url, headers)
    return HttpRequest(url, body, sent)


def _describe(exc: httpx.HTTPError) -> tuple[str, bool]:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})", True
    if isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol):
        return f"network error ({type(exc).__name__}: {exc})", True
    return f"request failed ({type(exc).__name__}: {exc})", False


def send(
    client: httpx.Client, channel: Channel, request: HttpRequest, timeout_s: float, now: datetime
) -> Outcome:
    """POST once; never raises for network trouble, never puts a secret in the outcome."""
    started = time.monotonic()
    secrets = (*channel.secrets, request.url)
    guard_logs(secrets)
    try:
        response = client.post(
            request.url.reveal(),
            content=request.body,
            headers=list(request.headers),
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        text, retry = _describe(exc)
        return Outcome(False, retry, None, redact(text, secrets), None, time.monotonic() - started)
    except ValueError as exc:  # a malformed URL
        return Outcome(
            False,
            False,
            None,
            redact(f"invalid request: {exc}", secrets),
            None,
            time.monotonic() - started,
        )
    elapsed = time.monotonic() - started
    delivered, retry = disposition(response.status_code)
    if delivered:
        return Outcome(True, False, response.status_code, None, None, elapsed)
    detail = response.text[:200].strip().replace("\n", " ")
    reason = response.reason_phrase or ""
    error = f"HTTP {response.status_code} {reason}".strip() + (f": {detail}" if detail else "")
    if not retry:
        error += " (not retried: the receiver refused this request)"
    wait = parse_retry_after(response.headers.get("Retry-After"), now) if retry else None
    return Outcome(False, retry, response.status_code, redact(error, secrets), wait, elapsed)
