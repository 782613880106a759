"""`make eval` (alerts): the default rules on the labelled alert-quality set, scored like an on-call.

Each trace of `bench.alert_traces` is written as a log, ingested into a fresh database (a cold
start) and replayed with `alerts.backtest` every 10 s, as the watcher evaluates after its batches.
What counts is what a person receives: each FIRING message (a first announcement or an update of
an incident). A message that lists a labelled spike's scope between its start and 5 minutes after
its end is a true page; any other is a false alarm. Prints per-trace and overall precision,
recall, false alarms per 6 hours and the median delay from spike start to its first page, and
exits non-zero when the targets are missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.alert_traces import START, TRACES, Event, Trace, write_trace
from conflictradar.alerts.backtest import run
from conflictradar.alerts.config import load_alert_config
from conflictradar.alerts.notifications import Notification, Status
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.reader import DirectReader
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

STEP = timedelta(seconds=10)
GRACE = timedelta(minutes=5)
TARGET_RECALL = 1.0
TARGET_FALSE_PER_6H = 1.0
TARGET_DELAY_S = 120.0


@dataclass(frozen=True)
class Score:
    trace: str
    hours: float
    spikes: int
    caught: int
    pages: int
    true_pages: int
    false_pages: list[str]
    delays_s: list[float]
    missed: list[str]
    resolved: int
    seconds: float


def _matches(n: Notification, e: Event) -> bool:
    if not (e.start() <= n.created <= e.end() + GRACE):
        return False
    firing = [a for a in n.alerts if a.status is Status.FIRING]
    if e.kind == "global":
        return bool(firing)
    return any(a.scope_value == e.endpoint or not a.scope_value for a in firing)


def _describe(e: Event) -> str:
    what = e.endpoint or "all endpoints"
    return f"{e.kind} x{e.factor:g} on {what} at +{e.at_min:g} min for {e.minutes:g} min"


def score_trace(trace: Trace, work: Path) -> Score:
    started = time.perf_counter()
    logs = work / trace.name
    write_trace(trace, logs / "access.log")
    db = work / f"{trace.name}.duckdb"
    settings = load_settings(db=db, env={})
    with Store.open(db) as store:
        Ingester(store, settings).ingest(expand_paths([str(logs)]))
    config = load_alert_config(settings, env={}, require_secrets=False)
    until = START + timedelta(hours=trace.hours)
    result = run(config, DirectReader(db, settings.sql), START, until, STEP)
    pages = [n for n in result.notifications if n.status is Status.FIRING and not
             any(a.repeat for a in n.alerts)]  # fmt: skip
    spikes = [e for e in trace.events if e.spike]
    delays, missed = [], []
    for e in spikes:
        hits = [n for n in pages if _matches(n, e)]
        if hits:
            delays.append((min(n.created for n in hits) - e.start()).total_seconds())
        else:
            missed.append(_describe(e))
    true = [n for n in pages if any(_matches(n, e) for e in spikes)]
    false = [
        f"{(n.created - START) / timedelta(minutes=1):.0f} min: "
        + "; ".join(a.reason for a in n.alerts if a.status is Status.FIRING)
        for n in pages
        if n not in true
    ]
    resolved = sum(n.status is Status.RESOLVED for n in result.notifications)
    return Score(trace.name, trace.hours, len(spikes), len(spikes) - len(missed), len(pages),
                 len(true), false, delays, missed, resolved, time.perf_counter() - started)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(prog="make eval (alerts)")
    p.add_argument("--trace", action="append", help="only these traces (default: all)")
    args = p.parse_args()
    traces = [t for t in TRACES if not args.trace or t.name in args.trace]
    print(f"alerts eval: default rules, {len(traces)} labelled traces, evaluated every "
          f"{STEP.total_seconds():g} s from an empty database")  # fmt: skip
    print(f"\n{'trace':<13} {'hours':>5} {'spikes':>6} {'caught':>6} {'pages':>5} {'false':>5}"
          f" {'resolved':>8} {'median delay':>12} {'time':>7}")  # fmt: skip
    scores = []
    with tempfile.TemporaryDirectory(prefix="conflictradar-alert-eval-") as tmp:
        for trace in traces:
            s = score_trace(trace, Path(tmp))
            scores.append(s)
            delay = f"{statistics.median(s.delays_s):.0f} s" if s.delays_s else "-"
            print(f"{s.trace:<13} {s.hours:>5g} {s.spikes:>6} {s.caught:>6} {s.pages:>5}"
                  f" {len(s.false_pages):>5} {s.resolved:>8} {delay:>12} {s.seconds:>6.1f}s",
                  flush=True)  # fmt: skip
    spikes = sum(s.spikes for s in scores)
    caught = sum(s.caught for s in scores)
    pages = sum(s.pages for s in scores)
    true = sum(s.true_pages for s in scores)
    false = sum(len(s.false_pages) for s in scores)
    hours = sum(s.hours for s in scores)
    delays = [d for s in scores for d in s.delays_s]
    recall = caught / spikes if spikes else 1.0
    precision = true / pages if pages else 1.0
    per_6h = false / hours * 6 if hours else 0.0
    median = statistics.median(delays) if delays else float("nan")
    print(f"\nprecision {precision:.3f} ({true} of {pages} pages were real spikes)")
    print(f"recall    {recall:.3f} ({caught} of {spikes} spikes paged; target {TARGET_RECALL:g})")
    print(f"false alarms {per_6h:.2f} per 6 h ({false} in {hours:g} h; target <= "
          f"{TARGET_FALSE_PER_6H:g})")  # fmt: skip
    print(f"median detection delay {median:.0f} s (max {max(delays, default=0):.0f} s; target "
          f"<= {TARGET_DELAY_S:g} s)")  # fmt: skip
    for s in scores:
        for m in s.missed:
            print(f"  missed [{s.trace}] {m}")
        for f in s.false_pages:
            print(f"  false alarm [{s.trace}] {f}")
    ok = recall >= TARGET_RECALL and per_6h <= TARGET_FALSE_PER_6H and median <= TARGET_DELAY_S
    print("alerts eval: " + ("all targets met" if ok else "TARGETS MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
