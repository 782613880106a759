"""A real `conflictradar watch` for the security tests: one per test module (not tests themselves).

The database is seeded first with 409s, rejects and rows in every alert table, so "unchanged"
means something for each table; the watcher runs with `--no-alerts` so nothing but an attack
could change the alert tables.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from conflictradar.alerts.schema import ensure_tables
from conflictradar.dashboard.server import stop_process
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.served_reader import connect_served
from conflictradar.ingest.settings import Settings, load_settings
from conflictradar.ingest.store import Store

LINE = '10.0.0.{c} - - [02/Jun/2025:10:{m:02d}:{s:02d} +0000] "PUT /orders/{n} HTTP/1.1" {st} 5 "-" "c"\n'
WATCHED_TABLES = ("conflicts", "causes", "rejects", "requests", "files", "alert_state",
                  "alert_events", "alert_notifications", "alert_outbox", "deliveries")  # fmt: skip
SEED_ALERTS = """
INSERT INTO alert_state (rule, scope, state) VALUES ('spike', 'endpoint', 'firing');
INSERT INTO alert_events (id, rule, state, message) VALUES ('e1', 'spike', 'firing', 'm');
INSERT INTO alert_notifications (id, rule, status, body) VALUES ('n1', 'spike', 'firing', '{}');
INSERT INTO alert_outbox (key, notification_id, channel, state) VALUES ('k1', 'n1', 'ops', 'done');
INSERT INTO deliveries (id, notification_id, channel, outcome) VALUES ('d1', 'n1', 'ops', 'ok');
"""
# An md5 of the text of every row, per watched table.
FINGERPRINT = "SELECT " + ", ".join(
    f"(SELECT md5(coalesce(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR), '')) FROM {table} t)"
    for table in WATCHED_TABLES
)


def write_lines(path: Path, start: int, count: int) -> None:
    with path.open("a") as fh:
        for n in range(start, start + count):
            m, s = divmod(n % 3600, 60)
            fh.write(LINE.format(c=n % 50, m=m, s=s, n=n, st=409 if n % 7 == 0 else 200))


def wait_for(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def seed(db: Path, logs: Path) -> None:
    """The database before the watcher starts: alert tables with a row each; the log with 409s
    and two lines that become rejects."""
    with Store.open(db) as store:
        ensure_tables(store.con)
        store.con.execute(SEED_ALERTS)
    logs.mkdir(exist_ok=True)
    write_lines(logs / "access.log", 0, 300)
    with (logs / "access.log").open("a") as fh:
        fh.write("not a log line <a href='https://evil.example'>x</a>\n\x1b[2Jgarbage\n")


@dataclass
class Watcher:
    db: Path
    logs: Path
    settings: Settings
    proc: subprocess.Popen[str]
    stderr: Path
    next_line: int = 300

    def requests(self) -> int:
        reader = open_reader(self.settings)
        return int(reader.query("SELECT count(*) FROM requests")[0][0].as_py())

    def classified(self) -> bool:
        """Whether every ingested 409 is in `conflicts` (the watcher classifies after ingest)."""
        sql = ("SELECT (SELECT count(*) FROM conflicts)"
               " = (SELECT count(*) FROM requests WHERE status = 409)")  # fmt: skip
        return bool(open_reader(self.settings).query(sql)[0][0].as_py())

    def append(self, count: int) -> int:
        """Append `count` lines; the number of requests once they are all ingested."""
        write_lines(self.logs / "access.log", self.next_line, count)
        self.next_line += count
        return self.next_line

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of the watched tables, through the watcher."""
        reader = open_reader(self.settings)
        out = {}
        for table in WATCHED_TABLES:
            rows = reader.query(f"SELECT * FROM {table} ORDER BY ALL").to_pylist()
            out[table] = [tuple(r.values()) for r in rows]
        return out

    def fingerprint(self) -> list[str]:
        """An md5 of the text of every row of each watched table, in one query."""
        row = open_reader(self.settings).query(FINGERPRINT).to_pylist()[0]
        return [str(v) for v in row.values()]

    def status(self, field: str) -> int:
        """A number from /proc/PID/status of the watcher (Threads, VmHWM, VmRSS in kB)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


def start_watcher(tmp: Path, config: str = "") -> Watcher:
    db, logs = tmp / "watched.duckdb", tmp / "logs"
    seed(db, logs)
    cfg = tmp / "conflictradar.toml"
    cfg.write_text(config)
    stderr = tmp / "watch.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db),
         "--config", str(cfg), "--no-alerts"],
        stdout=subprocess.DEVNULL, stderr=stderr.open("w"), text=True,
    )  # fmt: skip
    settings = load_settings(db=db, config=cfg, env={})
    watcher = Watcher(db, logs, settings, proc, stderr)
    wait_for(lambda: connect_served(db, settings.sql, wait_s=0) is not None)
    wait_for(lambda: watcher.requests() == 300)
    wait_for(watcher.classified)
    return watcher


def stop_watcher(watcher: Watcher) -> str:
    """Stop it; its stderr."""
    stop_process(watcher.proc)
    return watcher.stderr.read_text()


def direct_fingerprint(db: Path) -> list[str]:
    """The fingerprint read from the file itself (no watcher)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(FINGERPRINT).fetchone()
        assert row is not None
        return [str(v) for v in row]
    finally:
        con.close()
