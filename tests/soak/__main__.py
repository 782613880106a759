"""`make soak`: `conflictradar watch` for a long time under everything that goes wrong in production.

A writer appends RATE lines/s to three logs (two combined, one ECS) with rotations both ways and a
share of bad lines (mutated, and the two lines that once crashed ingest). `watch` is SIGKILLed
KILLS times at random moments during the first 70% of the run and restarted at once; the rest
of the run it is left alone, so its RSS can be compared from start to end. Bursts of 409s fire
a threshold alert rule whose webhook receiver (a real HTTP server on 127.0.0.1) is down for
DOWN minutes. At the end it waits for ingest and deliveries to settle and reports: lines lost,
doubled and unaccounted, alerts queued, delivered, received once / more than once, RSS.

    python -m tests.soak [--minutes 30] [--rate 1000] [--kills 100] [--down 10] [--dir DIR]

Exit status 1 when a line is lost or doubled, or an alert is not delivered.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

from tests.soak.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
CONFIG = """
[alerts]
retry_initial = "1s"
retry_max = "20s"
max_delivery_age = "3h"

[alerts.channels.soak-hook]
type = "webhook"
url_env = "SOAK_WEBHOOK_URL"
dedupe = true

[[alerts.rules]]
name = "soak 409 burst"
scope = "endpoint"
detector = "threshold"
window = "1m"
min_count = 100
for = "0s"
resolve_after = "20s"
flap_count = 1000
channels = ["soak-hook"]
"""


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Watcher:
    """The `watch` process, restarted after each kill; its stderr goes to one log file."""

    def __init__(self, work: Path, logs: Path, db: Path, url: str) -> None:
        self.cmd = [sys.executable, "-m", "conflictradar", "watch", "-v", str(logs), "--db", str(db),
                    "--config", str(work / "soak.toml")]  # fmt: skip
        self.env = {**os.environ, "SOAK_WEBHOOK_URL": url, "PYTHONPATH": str(REPO)}
        self.err = (work / "watch.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.starts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=self.err)  # fmt: skip
        self.started = time.monotonic()
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """A read while `watch` runs goes through its served reads (ingest.reader)."""
    from conflictradar.ingest.reader import open_reader
    from conflictradar.ingest.settings import load_settings

    table = open_reader(load_settings(db=db, env={})).query(sql)
    return [tuple(row.values()) for row in table.to_pylist()]


def settle(db: Path, summary: Path, deadline_s: float) -> dict[str, Any]:
    """Wait until every written line is read and no delivery is still queued."""
    end = time.monotonic() + deadline_s
    written = json.loads(summary.read_text())
    state: dict[str, Any] = {}
    while time.monotonic() < end:
        try:
            lines = query(db, "SELECT coalesce(sum(lines), 0) FROM files")[0][0]
            open_outbox = query(
                db, "SELECT count(*) FROM alert_outbox WHERE state IN ('queued', 'sending')"
            )[0][0]
            state = {"read": int(lines), "open_deliveries": int(open_outbox)}
            if state["read"] >= written["lines"] and state["open_deliveries"] == 0:
                return state
        except Exception as exc:  # the watcher may be busy; try again
            state["error"] = str(exc)
        time.sleep(2)
    return state


def verify(db: Path, written: dict[str, Any], receiver: Receiver) -> dict[str, Any]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        seqs = con.execute(
            "SELECT CAST(regexp_extract(query, '^seq=(\\d+)$', 1) AS BIGINT) AS s, count(*)"
            " FROM requests WHERE regexp_matches(query, '^seq=\\d+$') GROUP BY s"
        ).fetchall()
        counts = Counter(dict(seqs))
        good = written["good"]
        lost = sum(1 for s in range(good) if s not in counts)
        # The same line stored twice has the same time, client, method, path and status (a bad
        # line mutated into some seq=N would differ in them).
        doubled = one(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM requests"
            " WHERE regexp_matches(query, '^seq=\\d+$')"
            " GROUP BY query, ts, client_ip, method, path, status HAVING count(*) > 1)"
        )
        stray = sum(1 for s in counts if s >= good)
        requests, rejects = (
            one("SELECT count(*) FROM requests"),
            one("SELECT count(*) FROM rejects"),
        )
        read = one("SELECT coalesce(sum(lines), 0) FROM files")
        reasons = dict(con.execute(
            "SELECT reason, count(*) FROM rejects WHERE raw LIKE '%pseq=%' GROUP BY ALL"
        ).fetchall())  # fmt: skip
        outbox = dict(
            con.execute("SELECT state, count(*) FROM alert_outbox GROUP BY ALL").fetchall()
        )
        keys = [r[0] for r in con.execute("SELECT key FROM alert_outbox").fetchall()]
        events = dict(con.execute(
            "SELECT state, count(*) FROM alert_events WHERE NOT repeat GROUP BY ALL"
        ).fetchall())  # fmt: skip
        quarantined = one("SELECT count(*) FROM classify_quarantine")
    finally:
        con.close()
    got = receiver.snapshot()
    per_key = Counter(r.key for r in got)
    return {
        "lines_written": written["lines"], "good_lines": good, "bad_lines": written["bad"],
        "lines_read": int(read), "stored": requests, "rejected": rejects,
        "skipped": int(read) - requests - rejects,
        "unaccounted": written["lines"] - int(read),
        "lost": lost, "doubled": doubled, "stray_seq": stray,
        "poison_rejects": reasons, "rotations": written["rotations"],
        "quarantined_ranges": quarantined,
        "alert_events": events, "outbox": outbox,
        "notifications": len(keys),
        "received_requests": len(got),
        "delivered_once": sum(1 for k in keys if per_key[k] == 1),
        "delivered_more_than_once": sum(1 for k in keys if per_key[k] > 1),
        "not_delivered": sum(1 for k in keys if per_key[k] == 0),
        "unexpected_received": sum(1 for k in per_key if k not in set(keys)),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=1000.0, help="lines per second")
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--down", type=float, default=10.0, help="receiver outage, minutes")
    p.add_argument("--bad", type=float, default=0.01, help="share of mutated lines")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp one)")
    args = p.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="conflictradar-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    logs, db, summary = work / "logs", work / "soak.duckdb", work / "written.json"
    logs.mkdir(exist_ok=True)
    (work / "soak.toml").write_text(CONFIG)
    seconds = args.minutes * 60
    down_s = min(args.down * 60, seconds / 3)
    down_at = seconds * 0.25
    rng = random.Random(args.seed)
    kill_at = sorted(rng.uniform(5, seconds * 0.7) for _ in range(args.kills))
    receiver = Receiver()
    receiver.up()
    watcher = Watcher(work, logs, db, receiver.url)
    print(f"soak: {args.minutes:g} min at {args.rate:g} lines/s, {args.kills} kills, receiver down"
          f" {down_s / 60:g} min from minute {down_at / 60:g}; work folder {work}", flush=True)  # fmt: skip
    watcher.start()
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.soak.writer", str(logs), str(seconds), str(args.rate),
         str(args.seed), str(args.bad), str(summary)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    started = time.monotonic()
    kills = 0
    rss: list[tuple[float, int, int]] = []  # (minute, incarnation, kB)
    receiver_down = False
    next_sample = 0.0
    while writer.poll() is None:
        t = time.monotonic() - started
        if kills < len(kill_at) and t >= kill_at[kills]:
            watcher.kill()
            kills += 1
            watcher.start()
        if not receiver_down and down_at <= t < down_at + down_s:
            receiver.down()
            receiver_down = True
            print(f"soak: receiver down at minute {t / 60:.1f}", flush=True)
        elif receiver_down and t >= down_at + down_s:
            receiver.up()
            receiver_down = False
            print(f"soak: receiver up at minute {t / 60:.1f}", flush=True)
        if t >= next_sample and watcher.proc is not None:
            next_sample = t + 10
            kb = rss_kb(watcher.proc.pid)
            if kb is not None and time.monotonic() - watcher.started >= 20:
                rss.append((t / 60, watcher.starts, kb))
        time.sleep(0.05)
    if receiver_down:
        receiver.up()
    state = settle(db, summary, deadline_s=300)
    code = watcher.stop()
    written = json.loads(summary.read_text())
    report = verify(db, written, receiver)
    last = [r for r in rss if r[1] == watcher.starts]
    report.update({
        "minutes": args.minutes, "rate": args.rate, "kills": kills, "starts": watcher.starts,
        "watch_exit": code, "settled": state,
        "rss_final_run_start_mb": round(last[0][2] / 1024, 1) if last else None,
        "rss_final_run_end_mb": round(last[-1][2] / 1024, 1) if last else None,
        "rss_final_run_minutes": round(last[-1][0] - last[0][0], 1) if last else None,
        "rss_max_mb": round(max(r[2] for r in rss) / 1024, 1) if rss else None,
        "reading_failed_logs": (work / "watch.log").read_text(errors="replace").count("reading failed"),
        "tracebacks": (work / "watch.log").read_text(errors="replace").count("Traceback"),
    })  # fmt: skip
    (work / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    ok = (report["lost"] == 0 and report["doubled"] == 0 and report["unaccounted"] == 0
          and report["not_delivered"] == 0)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
