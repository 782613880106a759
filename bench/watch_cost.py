"""`make bench` (watch cost): what `conflictradar watch` itself costs while following live traffic.

A real `conflictradar watch` (alerts on, as people run it) follows a folder after a backfill of
realistic traffic; a writer appends realistic combined lines (`bench.gen_realistic`) at a fixed
rate, one write every 10 ms, like a logger flushing its buffer. For each rate:

- cost: the watcher's CPU (utime + stime of all its threads, from /proc/PID/stat) over a window,
  as % of one core, and its RSS — with nothing else talking to it;
- latency: then a probe 409 is appended every 100 ms and this process polls `conflicts` through
  the watcher's read server every 50 ms: append -> visible p50/p95, and the watcher's CPU
  meanwhile ("read CPU": a served read first has the lines that wait for a batch read, at most
  one look per 0.5 s, so a reader this eager pays for a look about as often as every look
  cost before batching, plus its own 20 queries a second).

CPU% from /proc is per process, so it stays meaningful on a shared machine; latencies are
wall-clock and move with the machine's load.
`--budget PCT` runs the watcher with `[watch] cpu_budget` (looks spaced so the process keeps to
that share of a core; lines wait longer to be seen), to price the trade against the default.
`--long MINUTES` instead runs 1,000 lines/s for that long and compares RSS at 5 minutes and at
the end (the watcher must not grow with rows ingested).
`--fleet` follows both tiers of the same requests instead of one access log: two Envoy gateway
logs and two ECS-logging service logs (`sample_logs.tiered`: request ids that link each service
line to its gateway line, the services' database and cloud-API error texts), so the watcher's
classification takes its linked, text-matching form; the rate counts the lines of all four.
`--files N` spreads the realistic traffic over N access logs instead of one (a host's virtual
hosts, each growing by a line or two a second: what each file's read costs beside its lines).
`--history MINUTES` has the logs hold that many minutes at 100 lines/s when the watcher starts
(access logs only), instead of the last 200 s: the default rules' baselines look back 160
minutes, so only a history that long prices an alert evaluation as a watcher that has run for
hours pays it, every 10 s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from bench.gen_realistic import Traffic, now_stamps, past_stamps
from conflictradar.dashboard.server import stop_process
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.settings import Settings, load_settings
from conflictradar.sample_logs import tiered

TICK_S = 0.01
PROBE_EVERY_S = 0.1
BACKFILL_LINES = 20_000
# The weight of plain traffic among the fleet's stories: 409s ~5% of lines, as in production
# (sample_logs.tiered's own mix, a labelled set, has ~40%).
FLEET_BACKGROUND = 850.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` so far (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Fleet:
    """Both tiers of the same requests, stamped when written: each request's Envoy gateway line
    and, unless the gateway answered alone, its service's ECS line (sample_logs.tiered)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.batches = 0
        self.hops: Iterator[tiered.Hop] = iter(())

    def _hop(self) -> tiered.Hop:
        hop = next(self.hops, None)
        if hop is None:  # stories of a fresh seed: new resources, clients and request ids
            self.batches += 1
            self.hops = iter(
                tiered.simulate(
                    self.seed * 1000 + self.batches, 20_000, 0, background=FLEET_BACKGROUND
                )
            )
            hop = next(self.hops)
        return hop

    def lines(self, n: int, first_us: int, per_second: int = 0) -> dict[str, bytes]:
        """At least `n` lines by file name; request k is stamped first_us + k / per_second
        (0: all at first_us)."""
        out: dict[str, list[str]] = defaultdict(list)
        written = k = 0
        while written < n:
            hop = replace(self._hop(), at_us=first_us + (k * 1_000_000 // per_second
                                                          if per_second else 0))  # fmt: skip
            k += 1
            out[hop.gateway].append(tiered.envoy_line(hop))
            written += 1
            if hop.service:
                out[hop.service].append(tiered.ecs_line(hop, self.rng))
                written += 1
        return {name: ("\n".join(rows) + "\n").encode() for name, rows in out.items()}


def _now_us() -> int:
    return time.time_ns() // 1000


class Writer(threading.Thread):
    """Appends lines at `rate` lines/s (one write per tick): realistic combined lines to
    access.log, or with `fleet` both tiers to their four files; probe 409s (to access.log)
    on request."""

    def __init__(self, log: Path, rate: int, seed: int, fleet: bool = False,
                 files: int = 1) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.log, self.rate, self.files = log, rate, files
        self.traffic = Traffic(seed)
        self.fleet = Fleet(seed) if fleet else None
        self.stop = threading.Event()
        self.probing = threading.Event()
        self.probes: dict[int, float] = {}  # probe number -> monotonic time written
        self.written = 0
        self.ticks = 0  # writes of plain traffic so far

    def run(self) -> None:
        started = time.monotonic()
        next_probe = started
        probe = 0
        handles: dict[str, BinaryIO] = {}
        try:
            while not self.stop.is_set():
                due = int((time.monotonic() - started) * self.rate) - self.written
                files: dict[str, bytes] = {}
                if due > 0 and self.fleet is not None:
                    files = self.fleet.lines(due, _now_us())
                    self.written += sum(d.count(b"\n") for d in files.values())
                elif due > 0:  # with several files, each write goes to the next one
                    name = spread_name(self.log, self.ticks % self.files)
                    files = {name: self.traffic.lines(due, now_stamps(due))}
                    self.written += due
                    self.ticks += 1
                now = time.monotonic()
                if self.probing.is_set() and now >= next_probe:
                    probe += 1
                    probed = _probe_line(probe, now_stamps(1)[0])
                    files[self.log.name] = files.get(self.log.name, b"") + probed
                    self.probes[probe] = now
                    next_probe = max(next_probe + PROBE_EVERY_S, now)
                for name, data in files.items():
                    if name not in handles:
                        handles[name] = (self.log.parent / name).open("ab")
                    handles[name].write(data)
                    handles[name].flush()
                time.sleep(TICK_S)
        finally:
            for fh in handles.values():
                fh.close()


def spread_name(log: Path, k: int) -> str:
    """The k-th of the access logs `--files` spreads traffic over (the first is `log`)."""
    return log.name if k == 0 else f"site{k}.{log.name}"


def _probe_line(probe: int, stamp: str) -> bytes:
    return (f'192.0.2.1 - - [{stamp}] "PUT /api/v2/orders/{probe}?probe={probe} HTTP/1.1" 409 15'
            ' "-" "probe/1.0"\n').encode()  # fmt: skip


@contextmanager
def watcher(
    seed: int, budget: float = 0.0, fleet: bool = False, spread: int = 1, history_min: float = 0.0
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Settings]]:
    with tempfile.TemporaryDirectory(prefix="conflictradar-bench-cost-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        db = Path(tmp) / "w.duckdb"
        config = Path(tmp) / "conflictradar.toml"
        config.write_text(f'[watch]\ncpu_budget = "{budget:g}%"\n')
        log = logs / "access.log"
        # The logs as the watcher finds them: the last BACKFILL_LINES / 100 seconds at 100
        # lines/s, or the last `history_min` minutes.
        backfill = round(history_min * 60 * 100) if history_min > 0 else BACKFILL_LINES
        if fleet:
            first = _now_us() - 250 * 1_000_000  # ~14,000 requests at 70 a second: 205 s
            files = Fleet(seed).lines(BACKFILL_LINES, first, per_second=70)  # ~1.4 lines each
            backfill = sum(data.count(b"\n") for data in files.values())
            for name, data in files.items():
                (logs / name).write_bytes(data)
        else:
            traffic = Traffic(seed)
            lines = traffic.lines(backfill, past_stamps(backfill, 100)).splitlines(True)
            for k in range(spread):
                (logs / spread_name(log, k)).write_bytes(b"".join(lines[k::spread]))
        proc = subprocess.Popen(
            [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db),
             "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        settings = load_settings(db=db, env={})
        try:
            _wait_rows(settings, backfill, 120 + backfill / 5_000)
            time.sleep(2.0)  # backfill classified, first alert evaluation done
            yield proc, log, settings
        finally:
            stop_process(proc)


def _wait_rows(settings: Settings, want: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if open_reader(settings).query("SELECT count(*) FROM requests")[0][0].as_py() >= want:
                return
        except Exception:  # not created or not serving yet
            pass
        time.sleep(0.2)
    raise SystemExit(f"watch bench: the backfill of {want} lines did not arrive in {timeout_s} s")


@dataclass
class Cost:
    rate: int
    cpu_pct: float
    read_cpu_pct: float  # while a reader polls every 50 ms (the latency probe)
    rss_mb: float
    p50: float
    p95: float
    probes: int
    visible: int


def _latencies(writer: Writer, settings: Settings, seconds: float) -> tuple[list[float], int]:
    reader = open_reader(settings)
    seen: dict[int, float] = {}
    writer.probing.set()
    end = time.monotonic() + seconds
    grace = end + 10.0
    while time.monotonic() < grace:
        if time.monotonic() >= end:
            writer.probing.clear()
        pending = [p for p in list(writer.probes) if p not in seen]
        if time.monotonic() >= end and not pending:
            break
        if pending:
            found = reader.query(
                "SELECT CAST(substr(query, 7) AS BIGINT) FROM conflicts"
                " WHERE user_agent = 'probe/1.0' AND query IN (SELECT unnest(?))",
                [[f"probe={p}" for p in pending]],
            )
            now = time.monotonic()
            for p in found.column(0).to_pylist():
                seen.setdefault(int(p), now)
        time.sleep(0.05)
    lat = [seen[p] - t for p, t in writer.probes.items() if p in seen]
    return lat, len(writer.probes)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cost_run(rate: int, seconds: float, latency_s: float, seed: int = 7, budget: float = 0.0,
             fleet: bool = False, files: int = 1, history_min: float = 0.0) -> Cost:  # fmt: skip
    with watcher(seed, budget, fleet, files, history_min) as (proc, log, settings):
        writer = Writer(log, rate, seed + 1, fleet, files)
        writer.start()
        time.sleep(3.0)  # past the first batches at this rate
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        rss = rss_mb(proc.pid)
        lat, probes = _latencies(writer, settings, latency_s)
        read_cpu = 100 * (cpu_seconds(proc.pid) - cpu1) / (time.monotonic() - t1)
        writer.stop.set()
        writer.join()
    return Cost(rate, 100 * (cpu1 - cpu0) / (t1 - t0), read_cpu, rss,
                statistics.median(lat) if lat else float("nan"), _pct(lat, 95), probes,
                len(lat))  # fmt: skip


def idle_run(seconds: float, seed: int = 7, fleet: bool = False, files: int = 1,
             history_min: float = 0.0) -> float:  # fmt: skip
    with watcher(seed, fleet=fleet, spread=files, history_min=history_min) as (proc, _, _):
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)


def long_run(minutes: float, rate: int = 1_000, seed: int = 7) -> None:
    print(f"\n== watch: RSS over {minutes:g} minutes at {rate:,} lines/s ==")
    with watcher(seed) as (proc, log, _settings):
        writer = Writer(log, rate, seed + 1)
        writer.start()
        started = time.monotonic()
        cpu0 = cpu_seconds(proc.pid)
        samples: list[tuple[float, float]] = []  # (minutes, RSS MB), every 30 s
        while (elapsed := time.monotonic() - started) < minutes * 60:
            time.sleep(min(30.0, minutes * 60 - elapsed))
            elapsed = time.monotonic() - started
            rss = rss_mb(proc.pid)
            samples.append((elapsed / 60, rss))
            cpu = 100 * (cpu_seconds(proc.pid) - cpu0) / elapsed
            print(f"  {elapsed / 60:5.1f} min: RSS {rss:6.0f} MB, {writer.written:>10,} lines,"
                  f" CPU {cpu:4.1f}% of a core on average", flush=True)  # fmt: skip
        writer.stop.set()
        writer.join()
    # One reading moves by +-10 MB with the batch in flight: compare the medians of the readings
    # from 4 to 6 minutes and of the last two minutes.
    at5 = [r for m, r in samples if 4 <= m <= 6]
    end = [r for m, r in samples if m >= minutes - 2]
    if at5 and end and minutes >= 8:
        a, b = statistics.median(at5), statistics.median(end)
        growth = 100 * (b - a) / a
        print(f"RSS around 5 min (median of {len(at5)} readings, 4-6 min) {a:.0f} MB, over the last"
              f" 2 of {minutes:g} min {b:.0f} MB: {growth:+.1f}%"
              f"   target within 10%: {'met' if abs(growth) <= 10 else 'NOT met'}")  # fmt: skip


def bench_watch_cost(
    rates: list[int], seconds: float, latency_s: float, budget: float = 0.0, fleet: bool = False,
    files: int = 1, history_min: float = 0.0,
) -> None:  # fmt: skip
    print("\n== watch cost: the watcher's own CPU (% of one core, /proc utime+stime) and RSS,"
          + (" a fleet: two gateway and two service logs of the same requests, linked by"
             " request id, with the services' error texts" if fleet else " realistic traffic")
          + (f" spread over {files} access logs" if files > 1 else "")
          + (f", {history_min:g} minutes of history at 100 lines/s before it" if history_min
             else "")
          + (f"; [watch] cpu_budget = {budget:g}% (the issue's targets are for the default)"
             if budget else "") + " ==")  # fmt: skip
    if not budget:
        print(
            f"idle (nothing appended), {seconds:g} s:"
            f" {idle_run(seconds, fleet=fleet, files=files, history_min=history_min):.2f}%"
            " of a core"
        )
    print(f"{'rate':>10} {'CPU':>7} {'RSS':>8} {'p50':>7} {'p95':>7}  probes  {'read CPU':>8}"
          "  targets")  # fmt: skip
    targets = {100: 3.0, 1_000: 10.0}
    for rate in rates:
        c = cost_run(rate, seconds, latency_s, budget=budget, fleet=fleet, files=files,
                     history_min=history_min)  # fmt: skip
        cpu_target = targets.get(rate)
        verdict = (f"CPU <= {cpu_target:g}%: {'met' if c.cpu_pct <= cpu_target else 'NOT met'}; "
                   if cpu_target else "")  # fmt: skip
        verdict += f"p95 <= 1 s: {'met' if c.p95 <= 1.0 else 'NOT met'}"
        print(f"{rate:>8,}/s {c.cpu_pct:6.1f}% {c.rss_mb:6.0f} MB {c.p50:6.2f}s {c.p95:6.2f}s"
              f" {c.visible:>3}/{c.probes:<3} {c.read_cpu_pct:7.1f}%  {verdict}",
              flush=True)  # fmt: skip
    print("CPU: nobody reading, so small appends wait up to [watch] batch_wait (5 s) or 1 MiB in"
          " a file to be read together; p50/p95 and read CPU: while a reader polls `conflicts`"
          " through the watcher every 50 ms (each read sees every line appended 0.5 s before it; the"
          " catch-up looks it causes are in read CPU, probe polling included)")  # fmt: skip


def main() -> None:
    # A TERM (the bench stopped from outside) unwinds like Ctrl-C: the watcher is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    p = argparse.ArgumentParser(prog="python -m bench.watch_cost")
    p.add_argument("--rates", default="100,1000,10000", help="lines/s, comma-separated")
    p.add_argument("--seconds", type=float, default=30.0, help="CPU measurement window per rate")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="probing window per rate")
    p.add_argument("--long", type=float, default=float(os.environ.get("BENCH_WATCH_LONG_MIN", 0)),
                   metavar="MINUTES", help="also run 1,000 lines/s this long and compare RSS"
                   " at 5 minutes and at the end (default $BENCH_WATCH_LONG_MIN or 0: skip)")  # fmt: skip
    p.add_argument(
        "--budget",
        type=float,
        default=0.0,
        metavar="PCT",
        help="run the watcher with [watch] cpu_budget = PCT%% (default 0: none)",
    )
    p.add_argument("--fleet", action="store_true",
                   help="follow two gateway and two service logs of the same requests (linked by"
                   " request id, with error texts) instead of one access log")  # fmt: skip
    p.add_argument("--files", type=int, default=1, metavar="N",
                   help="spread the traffic over N access logs (default 1)")  # fmt: skip
    p.add_argument("--history", type=float, default=0.0, metavar="MINUTES",
                   help="the logs hold this many minutes at 100 lines/s when the watcher starts"
                   " (default 0: the last 200 s; access logs only)")  # fmt: skip
    args = p.parse_args()
    if args.history and args.fleet:
        p.error("--history applies to access logs, not to --fleet")
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if rates:
        bench_watch_cost(rates, args.seconds, args.latency_seconds, args.budget, args.fleet,
                         max(1, args.files), args.history)  # fmt: skip
    if args.long > 0:
        long_run(args.long)


if __name__ == "__main__":
    main()
