"""`alerts test` and `alerts check` end to end (real receivers, real database), and the option
parsing the CLI relies on."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conflictradar.alerts.commands import parse_step, parse_when, run_backtest, run_check, run_test
from conflictradar.ingest.errors import ConfigError, UsageError
from conflictradar.ingest.reader import DirectReader
from tests.test_alerts_kit import Db, Receiver, Reply, db, receiver, settings_with, utc_minute

__all__ = ["db", "receiver"]


@pytest.fixture
def second() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


def channels(slack: Receiver, hook: Receiver) -> tuple[dict[str, Any], dict[str, str]]:
    table = {
        "retry_initial": "10ms",
        "retry_max": "20ms",
        "channels": {
            "chat": {"type": "slack", "url_env": "CHAT_URL"},
            "hook": {"type": "webhook", "url_env": "HOOK_URL"},
        },
    }
    return table, {"CHAT_URL": slack.url, "HOOK_URL": hook.url}


def test_alerts_test_sends_a_marked_test_through_every_channel(
    db: Db, receiver: Receiver, second: Receiver
) -> None:
    table, env = channels(receiver, second)
    out = io.StringIO()
    assert run_test(settings_with(db.settings, table), db.store, out, env=env) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ok   chat (slack): delivered, HTTP 200")
    assert lines[1].startswith("ok   hook (webhook): delivered, HTTP 200")
    slack = receiver.requests[0].json()
    assert slack["text"].startswith("[TEST]") and "TEST" in slack["blocks"][0]["text"]["text"]
    hook = second.requests[0].json()
    assert hook["alerts"][0]["labels"]["alertname"] == "conflictradar test notification"
    assert hook["alerts"][0]["annotations"]["description"].startswith("TEST:")


def test_alerts_test_reports_a_refusing_channel(
    db: Db, receiver: Receiver, second: Receiver
) -> None:
    second.default = Reply(404, body=b"no such hook")
    table, env = channels(receiver, second)
    out = io.StringIO()
    assert run_test(settings_with(db.settings, table), db.store, out, env=env) == 1
    assert "FAIL hook (webhook): rejected, HTTP 404 Not Found: no such hook" in (out.getvalue())


def test_alerts_test_gives_up_on_a_down_channel_within_its_wait(
    db: Db, receiver: Receiver, second: Receiver
) -> None:
    second.default = Reply(503)
    table, env = channels(receiver, second)
    out = io.StringIO()
    code = run_test(settings_with(db.settings, table), db.store, out, env=env, wait_s=0.3)
    assert code == 1
    assert "FAIL hook (webhook): gave_up, HTTP 503 Service Unavailable" in out.getvalue()
    assert len(second.requests) >= 2


def test_alerts_test_without_channels_says_what_to_do(db: Db) -> None:
    with pytest.raises(
        ConfigError,
        match=r"no alert channels are configured; add an "
        r"\[alerts.channels.NAME\] table",
    ):
        run_test(db.settings, db.store, io.StringIO(), env={})


def test_alerts_check_evaluates_once_and_delivers(
    db: Db, receiver: Receiver, second: Receiver
) -> None:
    now = utc_minute()  # once: the spike and the evaluation share one minute
    db.quiet_since(now - timedelta(minutes=120))
    db.conflicts(now, 30, endpoint="/orders/{id}", spread_s=90)
    table, env = channels(receiver, second)
    table["rules"] = [{"name": "spike", "scope": "global", "for": "0s", "min_count": 20}]
    out = io.StringIO()
    # Exit 3 (EXIT_FIRING): evaluated and delivered fine, and an alert is firing.
    assert run_check(settings_with(db.settings, table), db.store, now, out, env=env) == 3
    text = out.getvalue()
    assert "evaluated 1 rules at" in text
    assert "FIRING" in text and "spike: all 409s firing: 30 409s in 5m" in text
    assert "ok   chat (slack): delivered" in text and "ok   hook (webhook): delivered" in text
    assert len(receiver.requests) == len(second.requests) == 1
    # Run again: nothing changed, nothing sent.
    out = io.StringIO()
    assert run_check(settings_with(db.settings, table), db.store, now, out, env=env) == 3
    assert "no alert changed state" in out.getvalue() and "1 alerts firing" in out.getvalue()
    assert len(receiver.requests) == 1


def test_alerts_check_with_default_rules_and_no_channels(db: Db) -> None:
    now = utc_minute()
    db.quiet_since(now - timedelta(minutes=120))
    out = io.StringIO()
    assert run_check(db.settings, db.store, now, out, env={}) == 0
    assert "evaluated 2 rules" in out.getvalue() and "409 spike per endpoint" in out.getvalue()


def test_parse_when_and_step() -> None:
    now = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
    assert parse_when("2025-06-02T13:00:00Z", now) == datetime(2025, 6, 2, 13, tzinfo=UTC)
    assert parse_when("2025-06-02", now) == datetime(2025, 6, 2, tzinfo=UTC)
    assert parse_when("2h", now) == parse_when("-2h", now) == parse_when("2h ago", now)
    assert parse_when("2h", now) == now - timedelta(hours=2)
    assert parse_when("now", now) == now
    assert parse_step("30s") == timedelta(seconds=30)
    with pytest.raises(UsageError, match="--until 'yesterday' is not a time"):
        parse_when("yesterday", now, "--until")
    with pytest.raises(UsageError, match="--step '0m' is not a positive duration"):
        parse_step("0m")


def test_backtest_refuses_an_empty_span(db: Db) -> None:
    now = utc_minute()
    reader = DirectReader(db.settings.db, db.settings.sql)
    with pytest.raises(UsageError, match="must be after --since"):
        run_backtest(db.settings, reader, now, now, None, None, io.StringIO())
