"""A sender killed (SIGKILL) between sending a notification and recording the outcome: after a
restart, a channel that cannot deduplicate gets no duplicate; one that can gets the same key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conflictradar.alerts.engine import AlertEngine
from conflictradar.alerts.outbox import delivery_key
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.test_alerts_delivery import fixed_notification
from tests.test_alerts_kit import Received, Receiver, receiver

__all__ = ["receiver"]

REPO = Path(__file__).resolve().parents[1]
SENDER = r"""
import sys
from datetime import UTC, datetime
from conflictradar.alerts.engine import AlertEngine
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

settings = load_settings(config=sys.argv[1], db=sys.argv[2])
with Store.open(settings.db, wait_s=10) as store, AlertEngine(settings, store) as engine:
    print("recovered", len(engine.recovered), flush=True)
    settled = engine.deliver(datetime.now(UTC))
    print("settled", [s.state.value for s in settled], flush=True)
"""


def write_config(tmp: Path, kind: str, dedupe: bool) -> Path:
    extra = "dedupe = true\n" if dedupe else ""
    path = tmp / "conflictradar.toml"
    path.write_text(f"""
[alerts]
retry_initial = "10ms"
retry_max = "50ms"
timeout = "5s"

[alerts.channels.hook]
type = "{kind}"
url_env = "CRASH_HOOK_URL"
{extra}""")
    return path


def sender(config: Path, db: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CRASH_HOOK_URL": url, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, str(config), str(db)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with Store.open(db, wait_s=10) as store:
        return store.con.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("kind", "dedupe"), [("slack", False), ("webhook", False), ("webhook", True)]
)
def test_killed_between_send_and_record(
    tmp_path: Path, receiver: Receiver, kind: str, dedupe: bool
) -> None:
    config = write_config(tmp_path, kind, dedupe)
    db = tmp_path / "cr.duckdb"
    os.environ["CRASH_HOOK_URL"] = receiver.url
    try:
        settings = load_settings(config=config, db=db)
        with Store.open(db) as store, AlertEngine(settings, store) as engine:
            engine.queue(fixed_notification(), datetime.now(UTC))
    finally:
        del os.environ["CRASH_HOOK_URL"]

    victim: list[subprocess.Popen[str]] = []

    def kill_mid_attempt(_: Received) -> None:
        # The request has arrived: kill the sender before it can read the response and record it.
        proc = victim[0]
        os.kill(proc.pid, signal.SIGKILL)
        while proc.poll() is None:
            time.sleep(0.005)

    receiver.on_request = kill_mid_attempt
    victim.append(sender(config, db, receiver.url))
    assert victim[0].wait(timeout=60) == -signal.SIGKILL
    assert len(receiver.requests) == 1
    # Killed after sending, before recording: the attempt is durably marked as under way.
    assert rows(db, "SELECT state, attempts FROM alert_outbox") == [("sending", 1)]
    assert rows(db, "SELECT outcome FROM deliveries") == [("sending",)]

    receiver.on_request = None
    restarted = sender(config, db, receiver.url)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert "recovered 1" in out

    key = delivery_key("n-1", "hook")
    if dedupe:
        # Re-sent with the same Idempotency-Key: the receiver drops the copy; one in effect.
        assert len(receiver.requests) == 2
        assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {key}
        assert receiver.requests[0].body == receiver.requests[1].body
        assert rows(db, "SELECT state FROM alert_outbox") == [("delivered",)]
        assert rows(db, "SELECT attempt, outcome, delivered FROM deliveries ORDER BY attempt") == [
            (1, "in_doubt", None),
            (2, "delivered", True),
        ]
    else:
        # Never twice: not re-sent, and the uncertainty is recorded, not hidden.
        assert len(receiver.requests) == 1
        assert "settled []" in out
        assert rows(db, "SELECT state FROM alert_outbox") == [("in_doubt",)]
        ((outcome, delivered, error),) = rows(
            db, "SELECT outcome, delivered, error FROM deliveries"
        )
        assert (outcome, delivered) == ("in_doubt", None)
        assert "not re-sent" in str(error)
        assert "outcome unknown" in err  # logged for the operator

    # And a third start sends nothing more.
    again = sender(config, db, receiver.url)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "recovered 0" in out and "settled []" in out
    assert len(receiver.requests) == (2 if dedupe else 1)
