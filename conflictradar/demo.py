"""`conflictradar demo`: live sample traffic -> watch -> dashboard, wired from the packages.

Writes two hours of realistic gateway traffic (ending now) into a temporary folder, keeps
appending live traffic at the same rate with a conflict spike every few minutes, runs
`conflictradar watch` on it, starts the dashboard and prints its URL, then a summary of what
conflictradar found. Backfill and live traffic share one request rate and one 409 share, so the
alerts stay quiet between the injected spikes and page once for each.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TextIO

from conflictradar.ingest.errors import ConflictRadarError
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.render import print_table
from conflictradar.ingest.settings import Settings

BACKFILL_HOURS = 2.0
LIVE_RATE = 10.0  # lines per second, backfill and live alike
SPIKE_EVERY_S = 150.0

EXAMPLES = (
    (
        "409s by cause",
        "SELECT cause, count(*) AS conflicts, round(100.0 * count(*) / sum(count(*)) OVER (), 1)"
        " AS pct FROM conflicts GROUP BY cause ORDER BY conflicts DESC",
    ),
    (
        "Top endpoints by 409s, with their main cause",
        "SELECT endpoint, count(*) AS conflicts, mode(cause) AS main_cause FROM conflicts"
        " GROUP BY endpoint ORDER BY conflicts DESC LIMIT 8",
    ),
    (
        "Lost races: who won, and when",
        "SELECT strftime(ts, '%H:%M:%S') AS at, method, path, evidence FROM conflicts"
        " WHERE cause = 'concurrent_update' ORDER BY ts DESC LIMIT 5",
    ),
)


def _free_port(host: str, preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind((host, preferred))
            return preferred
        except OSError:
            s.bind((host, 0))
            return int(s.getsockname()[1])


def _wait_for_rows(settings: Settings, want: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    got = 0
    while time.monotonic() < deadline:
        if settings.db.exists():
            try:
                got = int(
                    open_reader(settings).query("SELECT count(*) FROM requests")[0][0].as_py()
                )
            except ConflictRadarError:
                got = 0
            if got >= want:
                break
        time.sleep(0.5)
    return got


def print_summary(settings: Settings, out: TextIO) -> None:
    reader = open_reader(settings)
    for title, sql in EXAMPLES:
        print(f'\n-- {title}\n$ conflictradar sql "{sql}"', file=out)
        print_table(reader.user_query(sql).table, "table", out)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the cleanup finish
    raise KeyboardInterrupt


def run_demo(
    settings: Settings,
    out: TextIO,
    duration_s: float | None,
    *,
    spike_every_s: float = SPIKE_EVERY_S,
    backfill_hours: float = BACKFILL_HOURS,
) -> int:
    from conflictradar.dashboard.server import start_dashboard, stop_process
    from conflictradar.sample_logs.generate import write_batch
    from conflictradar.sample_logs.live import run_live

    work = Path(tempfile.mkdtemp(prefix="conflictradar-demo-"))
    logs = work / "logs"
    logs.mkdir()
    settings = replace(settings, db=work / "demo.duckdb")
    now_us = int(time.time() * 1e6)
    start_us = now_us - int(backfill_hours * 3600 * 1e6)
    lines = int(LIVE_RATE * backfill_hours * 3600)
    print(f"conflictradar demo: writing {lines:,} lines of the last {backfill_hours:g} h"
          f" of sample traffic into {logs}", file=sys.stderr)  # fmt: skip
    write_batch(logs, seed=42, lines=lines, start_us=start_us, hours=backfill_hours, daily=False)
    watch = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(settings.db)]
        + (["--config", str(settings.config_path)] if settings.config_path else []),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    stop = threading.Event()
    live = threading.Thread(
        target=run_live, name="demo-traffic", daemon=True,
        kwargs={"out_dir": logs, "seed": 7, "rate": LIVE_RATE, "spike_every_s": spike_every_s,
                "stop": stop},
    )  # fmt: skip
    dashboard = None
    # A TERM (a timeout, a service manager) stops the demo like Ctrl-C: without this, Python
    # dies on the spot and leaves its watcher and dashboard running.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        got = _wait_for_rows(settings, lines, timeout_s=180)
        print(f"conflictradar demo: watch has ingested {got:,} lines; live traffic now flows at"
              f" ~{LIVE_RATE:g} lines/s with a 409 spike every {spike_every_s:g} s",
              file=sys.stderr)  # fmt: skip
        live.start()
        host = settings.dashboard.host
        port = _free_port(host, settings.dashboard.port)
        dashboard, url = start_dashboard(settings, host, port)
        print_summary(settings, out)
        print(f"\nDashboard: {url}\nDatabase:  {settings.db}  (try: conflictradar sql --db"
              f" {settings.db} \"SELECT * FROM conflicts LIMIT 5\")", file=out, flush=True)  # fmt: skip
        if duration_s:
            print(f"conflictradar demo: running for {duration_s:g} s (Ctrl-C stops earlier)",
                  file=sys.stderr)  # fmt: skip
            time.sleep(duration_s)
        else:
            print("conflictradar demo: running until Ctrl-C", file=sys.stderr)
            while watch.poll() is None:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C or TERM while the children stop must not abort their stopping and
        # leave them running (each stop is bounded: a child that does not exit is killed).
        quiet = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        if dashboard is not None:
            stop_process(dashboard)
        stop_process(watch, 30)
        if main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, quiet)
    print(f"conflictradar demo: stopped; the data stays in {work}", file=sys.stderr)
    return 0
