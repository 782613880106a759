"""The `alertmanager` channel against a real Prometheus Alertmanager on a free loopback port:
alerts arrive through its API with our fingerprint, silences apply, and resolving ends them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from conflictradar.alerts.config import parse_alert_config
from conflictradar.alerts.engine import AlertEngine
from conflictradar.alerts.outbox import DeliveryState
from conflictradar.alerts.webhook import fingerprint
from conflictradar.dashboard.server import stop_process
from tests.kit import free_port
from tests.system_packages import ensure
from tests.test_alerts_kit import Db, db, utc_minute, wait_for

__all__ = ["db"]

PACKAGE = "prometheus-alertmanager"
AM_CONFIG = """
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


def alertmanager_binary() -> str | None:
    return ensure(PACKAGE)[PACKAGE]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = alertmanager_binary()
    if binary is None:
        reason = (
            f"SKIPPED LOUDLY: Prometheus Alertmanager is not installed and cannot be installed "
            f"here (needs root and apt-get for the Debian package {PACKAGE})"
        )
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("alertmanager")
    (tmp / "am.yml").write_text(AM_CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            f"--storage.path={tmp}",
            f"--config.file={tmp / 'am.yml'}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if not wait_for(ready, 30):
            proc.kill()
            pytest.fail(f"Alertmanager did not become ready: {proc.communicate()[1][-2000:]}")
        yield base
    finally:
        stop_process(proc)


def am_alerts(base: str, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v2/alerts", params=params, timeout=5)
    response.raise_for_status()
    return list(response.json())


RULE = {
    "name": "409 spike per endpoint",
    "scope": "endpoint",
    "for": "0s",
    "min_count": 10,
    "resolve_after": "0s",
    "severity": "page",
}


def engine_for(db: Db, base: str, rule: dict[str, Any]) -> AlertEngine:
    table = {
        "group_wait": "0s",
        "retry_initial": "10ms",
        "channels": {"am": {"type": "alertmanager", "url_env": "AM_URL"}},
        "rules": [rule],
    }
    config = parse_alert_config(table, {"AM_URL": base})
    return AlertEngine(db.settings, db.store, config=config)


def test_alert_arrives_in_alertmanager_and_resolves(db: Db, alertmanager: str) -> None:
    base = utc_minute()  # once: a minute boundary crossed mid-test must not shift the windows
    spike_at = base - timedelta(minutes=30)
    db.quiet_since(base - timedelta(minutes=120))
    db.conflicts(spike_at, 15, endpoint="/orders/{id}", spread_s=120)
    with engine_for(db, alertmanager, RULE) as e:
        events = e.evaluate(spike_at)
        assert [ev.state.value for ev in events] == ["firing"]
        (s,) = e.deliver(spike_at)
        assert s.state is DeliveryState.DELIVERED and s.status == 200

        def ours() -> list[dict[str, Any]]:
            return [
                a
                for a in am_alerts(alertmanager)
                if a["labels"].get("alertname") == "409 spike per endpoint"
            ]

        assert wait_for(lambda: len(ours()) == 1, 10)
        (alert,) = ours()
        labels = {
            "alertname": "409 spike per endpoint",
            "scope": "endpoint",
            "severity": "page",
            "source": "conflictradar",
            "endpoint": "/orders/{id}",
        }
        assert alert["labels"] == labels
        assert alert["fingerprint"] == fingerprint(labels)  # Alertmanager computes the same
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["value"] == "15"
        assert alert["annotations"]["top_causes"] == "version_mismatch (15)"
        assert "endpoint=%2Forders%2F%7Bid%7D" in alert["generatorURL"]

        # Quiet again: the resolved notification ends it in Alertmanager.
        events = e.evaluate(base)
        assert [ev.state.value for ev in events] == ["resolved"]
        (s,) = e.deliver(base)
        assert s.state is DeliveryState.DELIVERED
        assert wait_for(lambda: ours() == [], 10)


def test_alertmanager_silences_apply(db: Db, alertmanager: str) -> None:
    now = utc_minute()
    silence = {
        "matchers": [{"name": "alertname", "value": "silenced 409s", "isRegex": False}],
        "startsAt": (now.replace(year=now.year - 1)).isoformat(),
        "endsAt": (now.replace(year=now.year + 1)).isoformat(),
        "createdBy": "conflictradar tests",
        "comment": "test",
    }
    httpx.post(f"{alertmanager}/api/v2/silences", json=silence, timeout=5).raise_for_status()
    db.quiet_since(now - timedelta(minutes=120))
    db.conflicts(now, 12, endpoint="/carts/{id}", spread_s=60)
    with engine_for(db, alertmanager, {**RULE, "name": "silenced 409s"}) as e:
        e.evaluate(now)
        (s,) = e.deliver(now)
        assert s.state is DeliveryState.DELIVERED

    def state() -> str | None:
        found = [
            a for a in am_alerts(alertmanager) if a["labels"].get("alertname") == "silenced 409s"
        ]
        return found[0]["status"]["state"] if found else None

    assert wait_for(lambda: state() == "suppressed", 10)


def test_it_is_a_real_alertmanager(alertmanager: str) -> None:
    status = httpx.get(f"{alertmanager}/api/v2/status", timeout=5).json()
    assert status["versionInfo"]["version"]
    assert status["config"]["original"].strip().startswith("global:")
