"""`make bench` (watch): append-to-visible latency under heavy readers, and sustained throughput.

A real `conflictradar watch` follows a folder; a writer appends combined lines at a fixed rate
with a probe 409 every 100 ms; two reader processes run heavy queries the whole time; this
process polls `conflicts` (through the watcher's read server) and times each probe from the
moment it was appended to the moment it is visible there.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.settings import load_settings

HEAVY = (
    "SELECT endpoint, method, count(*) AS n, avg(bytes) AS b, approx_count_distinct(client_ip) AS c,"
    " quantile_cont(line, 0.9) AS q FROM requests GROUP BY ALL ORDER BY n DESC",
    "SELECT count(*) FROM (SELECT a.path FROM (SELECT * FROM requests ORDER BY ts DESC LIMIT 3000) a"
    " JOIN (SELECT * FROM requests ORDER BY ts DESC LIMIT 3000) b ON a.endpoint = b.endpoint"
    " AND a.client_ip <> b.client_ip)",
)
READER = (
    "import sys, time\n"
    "from ingest.reader import open_reader\n"
    "from ingest.settings import load_settings\n"
    "s = load_settings(db=sys.argv[1], env={})\n"
    "end = time.monotonic() + float(sys.argv[2]); n = 0\n"
    "while time.monotonic() < end:\n"
    "    for q in sys.argv[3:]:\n"
    "        open_reader(s).query(q); n += 1\n"
    "print(n)\n"
)


def _line(seq: int, status: int, now: datetime) -> str:
    stamp = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (f'10.2.{seq % 200}.{seq % 97} - - [{stamp}] "PUT /orders/{seq % 5000}?seq={seq} HTTP/1.1"'
            f' {status} 15 "-" "bench/1.0"\n')  # fmt: skip


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_run(rate: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="conflictradar-bench-watch-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        db = Path(tmp) / "w.duckdb"
        log = logs / "access.log"
        log.write_text("".join(_line(i, 200, datetime.now(UTC)) for i in range(20_000)))
        watch = subprocess.Popen(
            [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db), "--no-alerts"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        settings = load_settings(db=db, env={})
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    n = open_reader(settings).query("SELECT count(*) FROM requests")[0][0].as_py()
                    if n >= 20_000:
                        break
                except Exception:
                    pass
                time.sleep(0.2)
            readers = [
                subprocess.Popen(
                    [sys.executable, "-c", READER, str(db), str(seconds + 5), *HEAVY],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            probes: dict[int, float] = {}
            seen: dict[int, float] = {}
            stop = threading.Event()

            def poll() -> None:
                reader = open_reader(settings)
                while not stop.is_set() or len(seen) < len(probes):
                    pending = [s for s in list(probes) if s not in seen]
                    if pending:
                        found = reader.query(
                            "SELECT CAST(substr(query, 5) AS BIGINT) FROM conflicts"
                            " WHERE query IN (SELECT unnest(?))",
                            [[f"seq={s}" for s in pending]],
                        )
                        now = time.monotonic()
                        for s in found.column(0).to_pylist():
                            seen.setdefault(int(s), now)
                    if stop.is_set() and time.monotonic() > stop_time + 30:
                        break
                    time.sleep(0.02)

            stop_time = float("inf")
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            seq = 1_000_000
            started = time.monotonic()
            next_probe = started
            written = 0
            with log.open("a") as fh:
                while (elapsed := time.monotonic() - started) < seconds:
                    due = int(elapsed * rate) - written
                    now_dt = datetime.now(UTC)
                    if due > 0:
                        fh.write("".join(_line(seq + i, 200, now_dt) for i in range(due)))
                        seq += due
                        written += due
                    if time.monotonic() >= next_probe:
                        fh.write(_line(seq, 409, now_dt))
                        fh.flush()
                        probes[seq] = time.monotonic()
                        seq += 1
                        next_probe += 0.1
                    fh.flush()
                    time.sleep(0.005)
            stop_time = time.monotonic()
            stop.set()
            poller.join(timeout=40)
            queries = sum(int(r.communicate(timeout=120)[0] or 0) for r in readers)
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=60)
    lat = [seen[s] - t for s, t in probes.items() if s in seen]
    return {
        "rate": rate,
        "probes": len(probes),
        "visible": len(lat),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p95": _percentile(lat, 95) if lat else float("nan"),
        "max": max(lat) if lat else float("nan"),
        "reader_queries": queries,
        "written": written,
    }


def throughput_run(lines: int) -> dict[str, float]:
    """Append `lines` as fast as the disk takes them while watch runs; time until all are in."""
    from bench.gen_combined import write_combined

    with tempfile.TemporaryDirectory(prefix="conflictradar-bench-tput-") as tmp:
        src = Path(tmp) / "source.log"
        write_combined(src, lines, seed=3)
        logs = Path(tmp) / "logs"
        logs.mkdir()
        db = Path(tmp) / "t.duckdb"
        (logs / "access.log").write_text("")
        watch = subprocess.Popen(
            [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db), "--no-alerts"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        settings = load_settings(db=db, env={})
        try:
            while not db.exists():
                time.sleep(0.1)
            time.sleep(1.0)
            started = time.monotonic()
            with src.open("rb") as fin, (logs / "access.log").open("ab") as fout:
                while chunk := fin.read(8 << 20):
                    fout.write(chunk)
                    fout.flush()
            appended = time.monotonic() - started
            while True:
                n = open_reader(settings).query("SELECT count(*) FROM requests")[0][0].as_py()
                if n >= lines:
                    break
                time.sleep(0.05)
            total = time.monotonic() - started
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=60)
    return {"lines": lines, "append_s": appended, "ingested_s": total, "rate": lines / total}


def bench_watch() -> None:
    print("\n== watch: append -> visible in `conflicts`, with 2 readers running heavy queries ==")
    print(f"{'rate':>10} {'probes':>7} {'p50':>8} {'p95':>8} {'max':>8} {'reader queries':>15}")
    for rate in (1_000, 10_000):
        r = latency_run(rate, seconds=20.0)
        print(f"{rate:>8,}/s {r['visible']:>3}/{r['probes']:<3} {r['p50']:>7.2f}s {r['p95']:>7.2f}s"
              f" {r['max']:>7.2f}s {r['reader_queries']:>15,}   target p95 <= 2 s:"
              f" {'met' if r['p95'] <= 2 else 'NOT met'}")  # fmt: skip
    t = throughput_run(int(os.environ.get("BENCH_WATCH_LINES", 1_000_000)))
    print(f"sustained watch throughput: {t['lines']:,.0f} lines appended in {t['append_s']:.2f} s,"
          f" all in the database after {t['ingested_s']:.2f} s -> {t['rate']:,.0f} lines/s"
          f" (target >= 100,000: {'met' if t['rate'] >= 100_000 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    bench_watch()
