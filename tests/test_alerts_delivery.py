"""Notifiers and outbox against a real HTTP receiver: exact payloads, HMAC, retries, escaping,
outages, give-up, ordering, grouping, and no secret anywhere."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conflictradar.alerts.config import AlertConfig, parse_alert_config
from conflictradar.alerts.engine import AlertEngine
from conflictradar.alerts.notifications import AlertItem, Notification, Status
from conflictradar.alerts.outbox import DeliveryState, delivery_key
from conflictradar.alerts.rules import Scope
from conflictradar.alerts.webhook import fingerprint, verify_signature
from conflictradar.ingest.alert_counts import Count
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from tests.test_alerts_kit import Db, Receiver, Reply, db, receiver, utc_minute, wait_for

__all__ = ["db", "receiver"]  # fixtures used here

T = datetime(2025, 6, 2, 13, 6, tzinfo=UTC)
HMAC_KEY = "hmac-key-0123456789"
LINK = (
    "http://127.0.0.1:8501/?from=2025-06-02T13%3A01%3A00Z&to=2025-06-02T13%3A06%3A00Z"
    "&endpoint=%2Forders%2F%7Bid%7D"
)


def fixed_notification(nid: str = "n-1") -> Notification:
    firing = AlertItem(
        rule="409 spike per endpoint",
        scope=Scope.ENDPOINT,
        scope_value="/orders/{id}",
        status=Status.FIRING,
        value=35,
        baseline=0.04,
        score=11.25,
        window_s=300,
        min_count=10,
        severity="warning",
        starts_at=T,
        ends_at=None,
        evaluated_at=T,
        reason="35 409s in 5m vs a baseline of 2",
        link=LINK,
        causes=(Count("concurrent_update", 20), Count("retry_after_success", 15)),
        resources=(Count("/orders/1048503", 5), Count("/orders/<!channel>", 2)),
        refresh_s=14700,
        rate=0.2,
        requests=175,
    )
    resolved = AlertItem(
        rule="409 spike per endpoint",
        scope=Scope.ENDPOINT,
        scope_value="/a&b/<https://x|y>",
        status=Status.RESOLVED,
        value=1,
        baseline=0.04,
        score=1.0,
        window_s=300,
        min_count=10,
        severity="warning",
        starts_at=T - timedelta(minutes=20),
        ends_at=T,
        evaluated_at=T,
        reason="1 409s in 5m",
        link="http://127.0.0.1:8501/?from=x",
        resources=(Count("/a&b/<https://x|y>", 1),),
        rate=0.01,
        requests=100,
    )
    return Notification(
        nid, "409 spike per endpoint", T, (firing, resolved), "http://127.0.0.1:8501/?to=y"
    )


def cfg(kind: str, recv: Receiver, **extra: Any) -> AlertConfig:
    channel = {"type": kind, "url_env": "HOOK_URL", **extra.pop("channel", {})}
    table = {
        "group_wait": "0s",  # one evaluation sends what fires (grouping has its own tests)
        "timeout": "1s",
        "retry_initial": "10ms",
        "retry_max": "40ms",
        "max_delivery_age": "30s",
        "channels": {"hook": channel},
        **extra,
    }
    return parse_alert_config(table, {"HOOK_URL": recv.url, "HOOK_KEY": HMAC_KEY})


def engine(db: Db, config: AlertConfig) -> AlertEngine:
    return AlertEngine(db.settings, db.store, config=config)


def now() -> datetime:
    return datetime.now(UTC)


def drain(e: AlertEngine, until: float = 10.0) -> None:
    """Deliver until nothing is open (retries included), in real time."""
    deadline = time.monotonic() + until
    while e.open_deliveries() and time.monotonic() < deadline:
        e.deliver(now())
        time.sleep(0.005)


def table(db: Db, sql: str) -> list[tuple[Any, ...]]:
    return db.store.con.execute(sql).fetchall()


# -- exact payloads ------------------------------------------------------------------------------

SLACK_EXPECTED = {
    "text": "[FIRING] 409 spike per endpoint: `endpoint /orders/{id}` firing 35 409s/5m = 20%"
    " (baseline 4%); `endpoint /a&amp;b/&lt;https://x|y&gt;` resolved 1 409s/5m = 1% (baseline 4%)",
    "blocks": [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*🔴 FIRING: 409 spike per endpoint (1 firing, 1 resolved)*",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "🔴 *endpoint* `/orders/{id}` — *35* 409s in the last 5m = *20%* of 175 requests"
                " (baseline rate 4%, +11.2σ)\n"
                "Top causes: `concurrent_update` 20 · `retry_after_success` 15\n"
                "Top resources: `/orders/1048503` 5 · `/orders/&lt;!channel&gt;` 2\n"
                f"<{LINK}|Open in dashboard>",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "✅ *endpoint* `/a&amp;b/&lt;https://x|y&gt;` resolved — now *1* 409s in the last 5m "
                "= *1%* of 100 requests (baseline rate 4%, +1.0σ); firing since 2025-06-02T12:46:00Z\n"
                "Top resources: `/a&amp;b/&lt;https://x|y&gt;` 1\n"
                "<http://127.0.0.1:8501/?from=x|Open in dashboard>",
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "rule `409 spike per endpoint` · evaluated 2025-06-02T13:06:00Z · "
                    "<http://127.0.0.1:8501/?to=y|dashboard>",
                }
            ],
        },
    ],
}

LABELS_A = {
    "alertname": "409 spike per endpoint",
    "scope": "endpoint",
    "severity": "warning",
    "source": "conflictradar",
    "endpoint": "/orders/{id}",
}
LABELS_B = {**LABELS_A, "endpoint": "/a&b/<https://x|y>"}
WEBHOOK_EXPECTED = {
    "version": "4",
    "groupKey": '{}:{alertname="409 spike per endpoint"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "hook",
    "groupLabels": {"alertname": "409 spike per endpoint"},
    "commonLabels": {
        "alertname": "409 spike per endpoint",
        "scope": "endpoint",
        "severity": "warning",
        "source": "conflictradar",
    },
    "commonAnnotations": {"window": "5m", "baseline": "0.04"},
    "externalURL": "http://127.0.0.1:8501",
    "alerts": [
        {
            "status": "firing",
            "labels": LABELS_A,
            "annotations": {
                "summary": "35 409s in 5m on endpoint /orders/{id} (20% of 175 requests)"
                " (baseline rate 4%)",
                "description": "35 409s in 5m vs a baseline of 2",
                "value": "35",
                "window": "5m",
                "dashboard": LINK,
                "rate": "0.2",
                "baseline": "0.04",
                "deviation": "11.25",
                "top_causes": "concurrent_update (20), retry_after_success (15)",
                "top_resources": "/orders/1048503 (5), /orders/<!channel> (2)",
            },
            "startsAt": "2025-06-02T13:06:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": LINK,
            "fingerprint": fingerprint(LABELS_A),
        },
        {
            "status": "resolved",
            "labels": LABELS_B,
            "annotations": {
                "summary": "1 409s in 5m on endpoint /a&b/<https://x|y> (1% of 100 requests)"
                " (baseline rate 4%)",
                "description": "1 409s in 5m",
                "value": "1",
                "window": "5m",
                "dashboard": "http://127.0.0.1:8501/?from=x",
                "rate": "0.01",
                "baseline": "0.04",
                "deviation": "1.00",
                "top_resources": "/a&b/<https://x|y> (1)",
            },
            "startsAt": "2025-06-02T12:46:00Z",
            "endsAt": "2025-06-02T13:06:00Z",
            "generatorURL": "http://127.0.0.1:8501/?from=x",
            "fingerprint": fingerprint(LABELS_B),
        },
    ],
}


def test_slack_payload_is_exact(db: Db, receiver: Receiver) -> None:
    with engine(db, cfg("slack", receiver)) as e:
        e.queue(fixed_notification(), now())
        e.deliver(now())
    (got,) = receiver.requests
    assert got.json() == SLACK_EXPECTED
    assert got.path == "/hooks/T000/B000/XXXXsecretXXXX"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Idempotency-Key"] == delivery_key("n-1", "hook")


def test_webhook_payload_is_alertmanager_v4_and_hmac_verifies(db: Db, receiver: Receiver) -> None:
    config = cfg("webhook", receiver, channel={"secret_env": "HOOK_KEY"})
    with engine(db, config) as e:
        e.queue(fixed_notification(), now())
        e.deliver(now())
    (got,) = receiver.requests
    assert got.json() == WEBHOOK_EXPECTED
    header = got.headers["X-Conflictradar-Signature"]
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    assert abs(int(t) - time.time()) < 60
    expected = hmac.new(HMAC_KEY.encode(), t.encode() + b"." + got.body, hashlib.sha256)
    assert hmac.compare_digest(v1, expected.hexdigest())
    assert verify_signature(header, got.body, HMAC_KEY.encode(), int(time.time()))
    assert not verify_signature(header, got.body + b" ", HMAC_KEY.encode(), int(time.time()))
    assert not verify_signature(header, got.body, b"wrong", int(time.time()))
    assert not verify_signature(header, got.body, HMAC_KEY.encode(), int(time.time()) + 3600)


def test_untrusted_text_is_escaped_for_slack(db: Db, receiver: Receiver) -> None:
    hostile = ["/x/<!channel>", "/y/<https://evil.example|click me>", "/a&b", "/@here/`x`"]
    base = utc_minute()
    db.quiet_since(base - timedelta(minutes=90))
    for i, path in enumerate(hostile):
        db.conflicts(base, 12, endpoint=path, spread_s=60 + i)
    config = cfg(
        "slack",
        receiver,
        rules=[{"name": "<!here> rule", "scope": "endpoint", "for": "0s", "min_count": 10}],
    )
    with engine(db, config) as e:
        e.evaluate(base)
        e.deliver(now())
    (got,) = receiver.requests
    texts = [got.json()["text"]] + [
        b["text"]["text"] if "text" in b else b["elements"][0]["text"] for b in got.json()["blocks"]
    ]
    everything = "\n".join(texts)
    for raw in ("<!channel>", "<!here>", "<https://evil", "|click me>", "/a&b", "@here"):
        assert raw not in everything
    assert "&lt;!channel&gt;" in everything and "&lt;!here&gt;" in everything
    assert "&lt;https://evil.example|click me&gt;" in everything and "/a&amp;b" in everything
    assert "@\u2060here" in everything
    # The only real links are ours, to the dashboard.
    import re

    links = re.findall(r"<([^>]*)>", everything)
    assert links and all(link.startswith("http://127.0.0.1:8501/?") for link in links)


# -- retry decisions -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered_once(db: Db, receiver: Receiver, status: int) -> None:
    receiver.default = Reply(status, body=b"" if status == 204 else b"ok")
    with engine(db, cfg("webhook", receiver)) as e:
        e.queue(fixed_notification(), now())
        (s,) = e.deliver(now())
        assert s.state is DeliveryState.DELIVERED and s.status == status
        time.sleep(0.05)
        assert e.deliver(now()) == []
    assert len(receiver.requests) == 1
    assert table(db, "SELECT outcome, status_code, delivered FROM deliveries") == [
        ("delivered", status, True)
    ]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_5xx_429_and_408_are_retried_with_backoff(db: Db, receiver: Receiver, status: int) -> None:
    receiver.replies = [Reply(status), Reply(status)]
    with engine(db, cfg("slack", receiver)) as e:
        e.queue(fixed_notification(), now())
        (first,) = e.deliver(now())
        assert first.state is DeliveryState.QUEUED and first.next_attempt_at is not None
        drain(e)
    assert len(receiver.requests) == 3
    keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
    assert keys == {delivery_key("n-1", "hook")}  # the same key on every attempt
    rows = table(
        db,
        "SELECT attempt, outcome, status_code, next_attempt_at IS NOT NULL, delivered"
        " FROM deliveries ORDER BY attempt",
    )
    assert rows == [
        (1, "retry", status, True, False),
        (2, "retry", status, True, False),
        (3, "delivered", 200, False, True),
    ]
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert all(g >= 0.004 for g in gaps)  # waited at least half the 10 ms initial backoff


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_answers_are_final(db: Db, receiver: Receiver, status: int) -> None:
    receiver.default = Reply(status, body=b"no_service")
    with engine(db, cfg("slack", receiver)) as e:
        e.queue(fixed_notification(), now())
        (s,) = e.deliver(now())
        assert s.state is DeliveryState.REJECTED
        time.sleep(0.1)
        assert e.deliver(now()) == [] and e.open_deliveries() == 0
    assert len(receiver.requests) == 1
    ((outcome, code, error),) = table(db, "SELECT outcome, status_code, error FROM deliveries")
    assert (outcome, code) == ("rejected", status)
    assert f"HTTP {status}" in error and "no_service" in error and "not retried" in error


def test_retry_after_is_honoured(db: Db, receiver: Receiver) -> None:
    receiver.replies = [Reply(429, headers=(("Retry-After", "1"),))]
    with engine(db, cfg("slack", receiver)) as e:
        e.queue(fixed_notification(), now())
        started = now()
        (s,) = e.deliver(started)
        assert s.next_attempt_at is not None
        assert s.next_attempt_at - started >= timedelta(seconds=1)
        assert e.deliver(now()) == []  # not before Retry-After, although backoff is 10 ms
        drain(e)
    assert len(receiver.requests) == 2
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.95


def test_a_timeout_is_retried(db: Db, receiver: Receiver) -> None:
    receiver.replies = [Reply(200, delay_s=1.5)]
    config = cfg("slack", receiver, channel={"timeout": "200ms"})
    with engine(db, config) as e:
        e.queue(fixed_notification(), now())
        (s,) = e.deliver(now())
        assert s.state is DeliveryState.QUEUED and "timed out" in (s.error or "")
        drain(e)
    assert table(db, "SELECT outcome FROM deliveries ORDER BY attempt") == [
        ("retry",),
        ("delivered",),
    ]


def test_receiver_down_for_a_while_then_up_gets_it_exactly_once(db: Db, receiver: Receiver) -> None:
    receiver.stop()  # connection refused from now on, same port later
    with engine(db, cfg("slack", receiver)) as e:
        e.queue(fixed_notification(), now())
        failures = 0
        while failures < 4:
            failures += sum(s.state is DeliveryState.QUEUED for s in e.deliver(now()))
            time.sleep(0.01)
        receiver.start()
        drain(e)
        e.deliver(now() + timedelta(hours=1))  # nothing left to send, however late it is
    assert len(receiver.requests) == 1
    outcomes = [r[0] for r in table(db, "SELECT outcome FROM deliveries ORDER BY attempt")]
    assert outcomes[-1] == "delivered" and set(outcomes[:-1]) == {"retry"}
    assert len(outcomes) >= 5
    errors = [r[0] for r in table(db, "SELECT error FROM deliveries WHERE outcome = 'retry'")]
    assert all("network error (ConnectError" in err for err in errors)


def test_gives_up_after_max_delivery_age_and_records_it(db: Db, receiver: Receiver) -> None:
    receiver.default = Reply(503)
    # 1 s leaves room for a second attempt on a loaded machine (300 ms once allowed only one).
    config = cfg("slack", receiver, max_delivery_age="1s")
    with engine(db, config) as e:
        e.queue(fixed_notification(), now())
        drain(e)
        assert e.open_deliveries() == 0
    ((state, error),) = table(db, "SELECT state, last_error FROM alert_outbox")
    assert state == "gave_up" and "max_delivery_age" in error and "HTTP 503" in error
    assert table(db, "SELECT outcome FROM deliveries ORDER BY attempt DESC LIMIT 1") == [
        ("gave_up",)
    ]
    assert 2 <= len(receiver.requests) <= 40


# -- evaluation to delivery -----------------------------------------------------------------


def spike_two_endpoints(db: Db, base: datetime, at: float = 0) -> None:
    """Spikes on two endpoints `at` minutes from `base`, the minute the test captured once: a
    minute boundary crossed during a slow setup must not shift the windows it evaluates."""

    def minute(offset: float) -> datetime:
        return base + timedelta(minutes=offset)

    db.quiet_since(minute(-150))
    db.conflicts(minute(at), 14, endpoint="/orders/{id}", spread_s=120, paths=4)
    db.conflicts(
        minute(at),
        11,
        endpoint="/payments/{id}/capture",
        spread_s=120,
        message="already exists",
    )
    db.conflicts(minute(at - 40), 2, endpoint="/users/{id}", spread_s=60)


ENDPOINT_RULE = {
    "name": "409 spike per endpoint",
    "scope": "endpoint",
    "for": "0s",
    "min_count": 10,
    "window": "5m",
    "resolve_after": "0s",
}


def test_one_message_covers_several_endpoints_firing_together(db: Db, receiver: Receiver) -> None:
    at = utc_minute()
    spike_two_endpoints(db, at)
    with engine(db, cfg("webhook", receiver, rules=[ENDPOINT_RULE])) as e:
        events = e.evaluate(at)
        assert sorted((ev.scope_value, ev.state.value) for ev in events) == [
            ("/orders/{id}", "firing"),
            ("/payments/{id}/capture", "firing"),
        ]
        assert len({ev.notification_id for ev in events}) == 1
        e.deliver(now())
        assert e.evaluate(at + timedelta(seconds=10)) == []  # no new transition
        e.deliver(now())
    (got,) = receiver.requests
    body = got.json()
    assert [a["labels"]["endpoint"] for a in body["alerts"]] == [
        "/orders/{id}",
        "/payments/{id}/capture",
    ]
    orders = body["alerts"][0]["annotations"]
    assert orders["value"] == "14" and orders["baseline"] == "0"
    assert orders["top_causes"] == "version_mismatch (14)"
    assert orders["top_resources"].startswith("/orders/1000 (4), /orders/1001 (4)")
    assert "endpoint=%2Forders%2F%7Bid%7D" in orders["dashboard"]
    start = (at - timedelta(minutes=5)).strftime("%Y-%m-%dT%H%%3A%M")
    end = at.strftime("%Y-%m-%dT%H%%3A%M")
    assert orders["dashboard"] == (
        f"http://127.0.0.1:8501/?range=custom&from={start}&to={end}&endpoint=%2Forders%2F%7Bid%7D"
    )
    assert body["alerts"][1]["annotations"]["top_causes"] == "duplicate_create (11)"
    recorded = table(
        db,
        "SELECT rule, scope, scope_value, state, previous, value, baseline,"
        " notification_id IS NOT NULL FROM alert_events ORDER BY scope_value",
    )
    assert recorded == [
        ("409 spike per endpoint", "endpoint", "/orders/{id}", "firing", "inactive", 14, 0.0, True),
        (
            "409 spike per endpoint",
            "endpoint",
            "/payments/{id}/capture",
            "firing",
            "inactive",
            11,
            0.0,
            True,
        ),
    ]


def test_resolved_waits_behind_an_undelivered_firing(db: Db, receiver: Receiver) -> None:
    base = utc_minute()
    spike_two_endpoints(db, base, at=-40)
    receiver.replies = [Reply(503), Reply(503)]
    config = cfg("webhook", receiver, rules=[ENDPOINT_RULE], max_delivery_age="2h")
    with engine(db, config) as e:
        e.evaluate(base - timedelta(minutes=40))
        e.deliver(now())  # firing: 503, queued for retry
        e.evaluate(base)  # everything resolved, queued behind the firing one
        drain(e)
    statuses = [r.json()["status"] for r in receiver.requests]
    assert statuses == ["firing", "firing", "firing", "resolved"]


def test_background_sender_delivers_without_blocking_evaluate(db: Db, receiver: Receiver) -> None:
    base = utc_minute()
    spike_two_endpoints(db, base)
    release = threading.Event()
    receiver.on_request = lambda _: release.wait(10)  # hold the request until released
    with engine(db, cfg("slack", receiver, rules=[ENDPOINT_RULE])) as e:
        e.start()
        e.evaluate(base)
        assert e.deliver_due(now()) == 0  # hands off to the thread, returns at once
        assert wait_for(lambda: len(receiver.requests) == 1)
        # The request is held at the receiver, yet evaluate and deliver_due have returned.
        assert e.open_deliveries() == 1
        assert e.evaluate(base + timedelta(seconds=5)) == []
        release.set()
        assert wait_for(lambda: e.open_deliveries() == 0)
    assert len(receiver.requests) == 1
    assert table(db, "SELECT outcome FROM deliveries") == [("delivered",)]


def test_no_channels_still_records_events(db: Db) -> None:
    base = utc_minute()
    spike_two_endpoints(db, base)
    config = parse_alert_config({"rules": [ENDPOINT_RULE]}, {})
    with engine(db, config) as e:
        assert len(e.evaluate(base)) == 2
        assert e.deliver(now()) == []
    assert table(db, "SELECT count(*) FROM alert_events") == [(2,)]
    assert table(db, "SELECT count(*) FROM alert_outbox") == [(0,)]


# -- secrets -----------------------------------------------------------------------------------


def test_no_secret_in_tables_errors_or_logs(
    db: Db, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    base = utc_minute()
    spike_two_endpoints(db, base)
    receiver.default = Reply(404, body=b"no hook at /hooks/T000/B000/XXXXsecretXXXX")
    config = cfg("webhook", receiver, rules=[ENDPOINT_RULE], channel={"secret_env": "HOOK_KEY"})
    caplog.set_level(logging.DEBUG)
    with engine(db, config) as e:
        e.evaluate(base)
        (s,) = e.deliver(now())
    assert s.error is not None and "<secret>" in s.error
    dump = " ".join(
        str(row)
        for name in (
            "alert_state",
            "alert_events",
            "alert_notifications",
            "alert_outbox",
            "deliveries",
        )
        for row in table(db, f"SELECT * FROM {name}")
    )
    texts = [dump, caplog.text, repr(config), str(config), repr(s)]
    for text in texts:
        assert "XXXXsecretXXXX" not in text and HMAC_KEY not in text
    assert "/hooks/T000" not in dump


def test_unreachable_url_error_names_no_secret(db: Db) -> None:
    url = "http://127.0.0.1:9/hooks/T1/B1/topsecretpath"  # the discard port: nobody listens
    config = parse_alert_config(
        {"timeout": "500ms", "channels": {"s": {"type": "slack", "url_env": "U"}}}, {"U": url}
    )
    with engine(db, config) as e:
        e.queue(fixed_notification(), now())
        (s,) = e.deliver(now())
    assert s.state is DeliveryState.QUEUED
    assert "topsecretpath" not in (s.error or "")
    assert "topsecretpath" not in str(table(db, "SELECT * FROM deliveries"))


def test_works_on_the_watchers_sandboxed_store(tmp_path: Path, receiver: Receiver) -> None:
    path = tmp_path / "sandboxed.duckdb"
    with Store.open(path, sandboxed=True) as store:
        sandboxed = Db(path, Settings(db=path), store)
        base = utc_minute()
        spike_two_endpoints(sandboxed, base)
        with AlertEngine(sandboxed.settings, store, config=cfg("slack", receiver,
                         rules=[ENDPOINT_RULE])) as e:  # fmt: skip
            assert len(e.evaluate(base)) == 2
            (s,) = e.deliver(now())
            assert s.state is DeliveryState.DELIVERED
    assert len(receiver.requests) == 1
