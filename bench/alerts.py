"""Bench: a 409 spike appended to a watched log reaches a Slack-format receiver — how fast?

    python -m bench.alerts [--runs 10] [--burst 12]

Each run appends a burst of 409 lines for a fresh endpoint (nginx combined format, current
timestamps) to a log that `watch` follows, and times until a Slack-format receiver (a real
ThreadingHTTPServer on 127.0.0.1) gets the firing message naming that endpoint. Target: p95
<= 5 s over 10 runs. `measure_spike_latency(start_watch)` takes any way of starting a watcher:
`start_cli_watch` (the real `conflictradar watch` subprocess) or `start_inprocess_poller`
(ingest + AlertEngine in a thread: the alert path without the tailer, for comparison).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conflictradar.dashboard.server import stop_process

REPO = Path(__file__).resolve().parents[1]
TARGET_P95_S = 5.0
URL_ENV = "BENCH_ALERTS_SLACK_URL"
CONFIG = f"""
[alerts]
group_wait = "0s"
# Each spike starts firing seconds after the last: with the default 5 m, alerts joining an open
# incident join it quietly (docs/alerts.md, Grouping) and the bench saw only its first spike.
group_interval = "1s"
timeout = "2s"
retry_initial = "50ms"
retry_max = "500ms"

[alerts.channels.bench-slack]
type = "slack"
url_env = "{URL_ENV}"

[[alerts.rules]]
name = "bench 409 spike"
scope = "endpoint"
detector = "threshold"
window = "1m"
min_count = 10
for = "0s"
resolve_after = "5s"
channels = ["bench-slack"]
"""


@dataclass(frozen=True)
class WatchSetup:
    """What a watcher under test must follow and use."""

    log_dir: Path
    log_file: Path
    db: Path
    config: Path
    env: dict[str, str]


StartWatch = Callable[[WatchSetup], AbstractContextManager[object]]


@dataclass
class SlackReceiver:
    """Records the arrival time and text of every Slack-format POST."""

    arrivals: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.monotonic()
                # The whole message (fallback text and Block Kit blocks): a grouped message names
                # its endpoints in the blocks only.
                text = body.decode("utf-8", errors="replace")
                with receiver.lock:
                    receiver.arrivals.append((arrived, text))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server = self.server
        threading.Thread(target=lambda: server.serve_forever(0.05), daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/services/BENCH/HOOK/token"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def first_mention(self, needle: str, after: float, also: str = "") -> float | None:
        with self.lock:
            return next(
                (
                    t
                    for t, text in self.arrivals
                    if t >= after and needle in text and also.lower() in text.lower()
                ),
                None,
            )


@dataclass(frozen=True)
class LatencyReport:
    latencies_s: tuple[float, ...]
    missed: int
    # Seconds from a spike's lines to its "resolved" message (window 30 s + resolve_after 5 s).
    resolved_after_s: tuple[float, ...] = ()
    unresolved: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_s) if self.latencies_s else float("inf")

    @property
    def p95(self) -> float:
        if not self.latencies_s or self.missed:
            return float("inf")
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def met(self) -> bool:
        return self.p95 <= TARGET_P95_S


def _line(path: str) -> str:
    ts = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'10.1.2.3 - - [{ts}] "PUT {path} HTTP/1.1" 409 17 "-" "bench-client/1.0"\n'


def _append(log: Path, lines: list[str]) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))
        fh.flush()
        os.fsync(fh.fileno())


def _letters(i: int) -> str:
    return "".join("abcdefghijklmnopqrstuvwxyz"[int(d)] for d in f"{i:02d}")


def measure_spike_latency(
    start_watch: StartWatch, runs: int = 10, burst: int = 12, timeout_s: float = 30.0
) -> LatencyReport:
    """Append `runs` spikes, one at a time, and time each until its Slack message arrives."""
    receiver = SlackReceiver()
    url = receiver.start()
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        root = Path(tmp)
        log_dir = root / "logs"
        log_dir.mkdir()
        log = log_dir / "access.log"
        _append(log, [_line("/health") for _ in range(5)])
        config = root / "conflictradar.toml"
        config.write_text(CONFIG, encoding="utf-8")
        setup = WatchSetup(
            log_dir,
            log,
            root / "bench.duckdb",
            config,
            {**os.environ, URL_ENV: url, "PYTHONPATH": str(REPO)},
        )
        latencies: list[float] = []
        missed = 0
        spikes: list[tuple[str, float]] = []
        resolved: list[float] = []
        unresolved = 0
        try:
            with start_watch(setup):
                for i in range(runs + 1):  # run 0 warms up (start-up, first detection)
                    segment = f"bench{_letters(i)}"
                    paths = [f"/{segment}/items/{n}" for n in range(burst)]
                    started = time.monotonic()
                    _append(log, [_line(p) for p in paths])
                    arrived = None
                    while arrived is None and time.monotonic() - started < timeout_s:
                        arrived = receiver.first_mention(f"/{segment}/items/", started)
                        time.sleep(0.005)
                    if i == 0:
                        continue
                    spikes.append((segment, started))
                    if arrived is None:
                        missed += 1
                    else:
                        latencies.append(arrived - started)
                # Each spike leaves its 30 s window; the resolved message must follow.
                deadline = time.monotonic() + 90
                for segment, started in spikes:
                    done = None
                    while done is None and time.monotonic() < deadline:
                        done = receiver.first_mention(f"/{segment}/items/", started, "RESOLVED")
                        # A grouped message names 10 alerts and counts the rest ("and 1 more").
                        done = done or receiver.first_mention("more alerts", started, "RESOLVED")
                        time.sleep(0.05)
                    if done is None:
                        unresolved += 1
                    else:
                        resolved.append(done - started)
        finally:
            receiver.stop()
    return LatencyReport(tuple(latencies), missed, tuple(resolved), unresolved)


@contextlib.contextmanager
def start_cli_watch(setup: WatchSetup) -> Iterator[subprocess.Popen[bytes]]:
    """The real thing: `python -m conflictradar watch LOGDIR --db DB --config CONFIG`."""
    cmd = [
        sys.executable,
        "-m",
        "conflictradar",
        "watch",
        str(setup.log_dir),
        "--db",
        str(setup.db),
        "--config",
        str(setup.config),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=setup.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"conflictradar watch exited at once ({proc.returncode}): {err}")
        yield proc
    finally:
        stop_process(proc, 15)


@contextlib.contextmanager
def start_inprocess_poller(setup: WatchSetup, every_s: float = 0.2) -> Iterator[None]:
    """A stand-in watcher: re-ingest the log every `every_s` and evaluate alerts (no tailer)."""
    from conflictradar.alerts.engine import AlertEngine
    from conflictradar.ingest.pipeline import Ingester
    from conflictradar.ingest.settings import load_settings
    from conflictradar.ingest.store import Store

    settings = load_settings(config=setup.config, db=setup.db, env=setup.env)
    stop = threading.Event()
    os.environ[URL_ENV] = setup.env[URL_ENV]
    store = Store.open(setup.db)
    engine = AlertEngine(settings, store, env=setup.env).start()
    ingester = Ingester(store, settings)

    def loop() -> None:
        while not stop.is_set():
            ingester.ingest([setup.log_file])
            engine.evaluate(datetime.now(UTC))
            stop.wait(every_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield None
    finally:
        stop.set()
        thread.join(10)
        engine.close()
        store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--burst", type=int, default=12, help="409 lines per spike (rule fires at 10)")
    p.add_argument(
        "--inprocess",
        action="store_true",
        help="use the in-process poller instead of `conflictradar watch`",
    )
    args = p.parse_args(argv)
    start = start_inprocess_poller if args.inprocess else start_cli_watch
    report = measure_spike_latency(start, args.runs, args.burst)
    print(f"\n== alerts: 409 spike appended -> Slack-format receiver, {args.runs} runs ==")
    print("latencies: " + ", ".join(f"{s:.2f}s" for s in report.latencies_s))
    if report.missed:
        print(f"missed: {report.missed} spikes never arrived within 30 s")
    print(
        f"p50 {report.p50:.2f} s, p95 {report.p95:.2f} s; TARGET p95 <= {TARGET_P95_S:g} s -> "
        f"{'met' if report.met else 'NOT met'} (x{TARGET_P95_S / report.p95:.1f} headroom)"
    )
    if report.resolved_after_s:
        print(
            f"resolved messages: {len(report.resolved_after_s)}/{args.runs} arrived, "
            f"{min(report.resolved_after_s):.1f}-{max(report.resolved_after_s):.1f} s after the"
            " spike (rule window 30 s, resolve_after 5 s)"
        )
    if report.unresolved:
        print(f"NOT resolved within 90 s: {report.unresolved} spikes")
    return 0 if report.met else 1


if __name__ == "__main__":
    raise SystemExit(main())
