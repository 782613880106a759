"""Fault test: watch killed with SIGKILL again and again while logs rotate and readers hammer it.

A writer appends to 3 files at >= 2,000 lines/s with both rotation styles; `conflictradar watch`
is killed at random moments at least 10 times and restarted; 2 reader processes run heavy
queries the whole time. Afterwards every written line is in `requests` exactly once, the readers
saw no error, and the causes equal those of a one-shot ingest of the same files.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

WRITE_SECONDS = 40.0
RATE = 2500.0
MIN_KILLS = 10


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def _watch(db: Path, logs: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _py("-m", "conflictradar", "watch", str(logs), "--db", str(db), "--no-alerts"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _count(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM requests").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def test_kill_9_rotation_and_heavy_readers(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    db = tmp_path / "watch.duckdb"
    rng = random.Random(20251122)
    writer = subprocess.Popen(
        _py("-m", "tests.faults.writer", str(logs), str(WRITE_SECONDS), str(RATE)),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    readers = [
        subprocess.Popen(
            _py("-m", "tests.faults.reader", str(db), str(WRITE_SECONDS + 5)),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    kills = 0
    watch = _watch(db, logs)
    while writer.poll() is None:
        time.sleep(rng.uniform(0.5, 2.5))
        if writer.poll() is not None:
            break
        watch.send_signal(signal.SIGKILL)
        watch.wait()
        kills += 1
        watch = _watch(db, logs)
    written = json.loads(writer.communicate(timeout=60)[0])
    # Let the last watcher catch up, then stop it cleanly.
    deadline = time.monotonic() + 120
    settings = load_settings(db=db, env={})
    from conflictradar.ingest.reader import open_reader

    while time.monotonic() < deadline:
        try:
            got = int(open_reader(settings).query("SELECT count(*) FROM requests")[0][0].as_py())
        except Exception:
            got = -1
        if got >= written["lines"]:
            break
        time.sleep(0.5)
    watch.send_signal(signal.SIGTERM)
    _, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err.decode()[-2000:]
    reader_reports = [json.loads(r.communicate(timeout=120)[0]) for r in readers]

    assert kills >= MIN_KILLS
    assert written["lines"] >= 2000 * WRITE_SECONDS * 0.9
    assert written["rotations"] >= 10
    for report in reader_reports:
        assert report["errors"] == [], report["errors"][:5]
        assert report["queries"] > 10

    con = duckdb.connect(str(db), read_only=True)
    total, distinct, lo, hi = con.execute(
        "SELECT count(*), count(DISTINCT query), min(CAST(substr(query, 5) AS BIGINT)),"
        " max(CAST(substr(query, 5) AS BIGINT)) FROM requests"
    ).fetchone() or (0, 0, 0, 0)
    assert (total, distinct, lo, hi) == (
        written["lines"],
        written["lines"],
        0,
        written["lines"] - 1,
    )
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    watched = dict(con.execute("SELECT query, cause FROM conflicts").fetchall())
    con.close()

    # The same files, ingested in one go into a fresh database, give the same causes.
    fresh = tmp_path / "fresh.duckdb"
    with Store.open(fresh) as store:
        Ingester(store, load_settings(db=fresh, env={})).ingest(expand_paths([str(logs)]))
        oneshot = dict(store.con.execute("SELECT query, cause FROM conflicts").fetchall())
    assert len(oneshot) == len(watched) > 1000
    assert watched == oneshot
    assert os.path.exists(db)
