"""`alerts test` and `alerts check` while a real `conflictradar watch` owns the database: the
watcher does them with its own engine and outbox over its serve port (alerts.actions), so the
test message is delivered once and recorded, and `check` answers as it does without a watcher."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conflictradar.dashboard.server import stop_process
from conflictradar.ingest.errors import DatabaseError, QueryRefusedError
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.served_reader import ServedReader, connect_served
from conflictradar.ingest.settings import Settings, load_settings
from tests.test_alerts_kit import Receiver, receiver, wait_for
from tests.watcher import start_watcher, stop_watcher

__all__ = ["receiver"]

CONFIG = """
[alerts]
group_wait = "0s"
retry_initial = "50ms"
retry_max = "200ms"

[alerts.channels.hook]
type = "webhook"
url_env = "HOOK_URL"

[[alerts.rules]]
name = "409s now"
scope = "global"
detector = "threshold"
min_count = 5
window = "5m"
for = "0s"
"""
RETRIED = "SELECT count(*) FROM deliveries WHERE outcome = 'retry'"
LINE = '10.0.0.{n} - - [{ts}] "PUT /orders/{n} HTTP/1.1" {status} 5 "-" "sdk/1"\n'


@dataclass
class Watch:
    db: Path
    config: Path
    logs: Path
    settings: Settings
    proc: subprocess.Popen[str]
    stderr: Path

    def write(self, statuses: list[int]) -> None:
        """Lines stamped a few seconds ago, so they fall in the rules' windows now."""
        at = datetime.now(UTC) - timedelta(seconds=5)
        with (self.logs / "access.log").open("a") as fh:
            for n, status in enumerate(statuses):
                ts = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
                fh.write(LINE.format(n=n % 200, ts=ts, status=status))

    def count(self, sql: str) -> int:
        return int(open_reader(self.settings).query(sql)[0][0].as_py())

    def cli(self, *args: str, hook_url: str | None = None) -> subprocess.CompletedProcess[str]:
        """`conflictradar alerts ...` on this database; HOOK_URL set only when given."""
        env = {k: v for k, v in os.environ.items() if k != "HOOK_URL"}
        if hook_url is not None:
            env["HOOK_URL"] = hook_url
        command = [sys.executable, "-m", "conflictradar", "alerts", *args, "--db", str(self.db),
                   "--config", str(self.config)]  # fmt: skip
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    def stop(self) -> str:
        stop_process(self.proc)
        return self.stderr.read_text()


@pytest.fixture
def watch(tmp_path: Path, receiver: Receiver) -> Iterator[Watch]:
    """A watcher with the alert engine on, whose HOOK_URL (and only its) points at `receiver`."""
    db, config, logs = tmp_path / "w.duckdb", tmp_path / "conflictradar.toml", tmp_path / "logs"
    config.write_text(CONFIG)
    logs.mkdir()
    stderr = tmp_path / "watch.err"
    env = {**os.environ, "HOOK_URL": receiver.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db),
         "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr.open("w"), text=True,
    )  # fmt: skip
    w = Watch(db, config, logs, load_settings(db=db, config=config, env={}), proc, stderr)
    try:
        w.write([200] * 20)
        assert wait_for(lambda: connect_served(db, w.settings.sql, wait_s=0) is not None, 60)
        assert wait_for(lambda: w.count("SELECT count(*) FROM requests") == 20, 60)
        yield w
    finally:
        w.stop()


def test_alerts_test_during_watch_is_delivered_once_by_the_watcher(
    watch: Watch, receiver: Receiver
) -> None:
    # This process has no HOOK_URL: only the watcher's channel can deliver it.
    done = watch.cli("test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok   hook (webhook): delivered, HTTP 200")
    assert "the watcher runs this `alerts test`" in done.stderr
    (got,) = receiver.requests
    assert got.json()["alerts"][0]["labels"]["alertname"] == "conflictradar test notification"
    # Recorded by the watcher, once: the outbox says delivered, nothing is left to send.
    assert watch.count("SELECT count(*) FROM deliveries WHERE outcome = 'delivered'") == 1
    assert watch.count("SELECT count(*) FROM alert_outbox WHERE state <> 'delivered'") == 0
    assert len(receiver.requests) == 1

    # The receiver down: one sentence saying so, a non-zero exit, the failure recorded.
    receiver.stop()
    down = watch.cli("test", "--wait", "1s")
    assert down.returncode == 1, down.stderr
    (line,) = down.stdout.splitlines()
    assert line.startswith("FAIL hook (webhook): gave_up, network error")
    assert "gave up after" in line and "max_delivery_age (1 s) reached" in line
    assert watch.count("SELECT count(*) FROM alert_outbox WHERE state = 'gave_up'") == 1
    assert "Traceback" not in down.stderr + watch.stop()


def test_alerts_check_during_watch_answers_as_without_it(watch: Watch, receiver: Receiver) -> None:
    quiet = watch.cli("check")
    assert quiet.returncode == 0, quiet.stderr
    assert "evaluated 1 rules at" in quiet.stdout and "409s now" in quiet.stdout

    # The receiver down while a spike arrives: the watcher's own evaluation fires, its delivery
    # fails and is retried; `check` says firing (3) and shows the failing delivery.
    receiver.stop()
    watch.write([409] * 8)
    assert wait_for(lambda: watch.count(RETRIED) >= 1, 60)
    during = watch.cli("check", "--wait", "1s")
    assert during.returncode == 3, during.stderr  # EXIT_FIRING
    assert "1 alerts firing" in during.stdout
    (failing,) = [line for line in during.stdout.splitlines() if " hook (webhook)" in line]
    assert failing.startswith("wait hook (webhook): ") and "network error" in failing
    # Up again: the watcher's retry delivers it, once.
    receiver.start()
    assert wait_for(lambda: len(receiver.requests) == 1, 60)
    assert receiver.requests[0].json()["status"] == "firing"
    during = watch.cli("check")
    assert during.returncode == 3, during.stderr
    assert "1 alerts firing" in during.stdout and "no alert changed state" in during.stdout

    assert "Traceback" not in watch.stop()
    # The same database without the watcher: this process opens it and answers the same.
    after = watch.cli("check", hook_url=receiver.url)
    assert after.returncode == 3, after.stderr
    assert "1 alerts firing" in after.stdout and "no alert changed state" in after.stdout
    assert "the watcher runs" not in after.stderr
    assert len(receiver.requests) == 1  # still firing: nobody sent it again


def test_a_watcher_without_alerts_says_so_and_takes_no_sql(tmp_path: Path) -> None:
    watcher = start_watcher(tmp_path)  # --no-alerts
    try:
        before = watcher.fingerprint()
        env = {k: v for k, v in os.environ.items() if k != "HOOK_URL"}
        done = subprocess.run(
            [sys.executable, "-m", "conflictradar", "alerts", "test", "--db", str(watcher.db)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.splitlines()[-1] == (
            f"conflictradar: error: the watcher of {watcher.db} does not evaluate alerts (it runs"
            " with --no-alerts); restart it without --no-alerts, or stop it, to test or check"
            " alerts"
        )
        served = connect_served(watcher.db, watcher.settings.sql)
        assert served is not None
        # An action carries no SQL, and a wrong token reaches no action.
        with pytest.raises(QueryRefusedError, match="takes no SQL"):
            served._ask("alert_test", "DELETE FROM requests", {})
        forged = ServedReader(served.db, served.sql, served.host, served.port, "not-the-token")
        with pytest.raises(DatabaseError, match="bad token"):
            forged.act("alert_check", {}, 5.0)
        assert watcher.fingerprint() == before
    finally:
        assert "Traceback" not in stop_watcher(watcher)
