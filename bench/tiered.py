"""`make bench`, tiered set: ingest throughput on gateway + service logs of the same requests.

Half the lines are a service's (ECS JSON) joined to a gateway's (Envoy text) by request id, so
this prices what joining tiers and explaining requests from all their lines costs; compare its
lines/s with the combined-log figure printed above it in the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.proc import Run, measure
from conflictradar.sample_logs import tiered

REPEATS = 3


def bench_tiered(data: Path, requests: int) -> None:
    folder = data / f"tiered-{requests}"
    if not (folder / "labels.csv").exists():
        print(f"generating {requests:,} tiered requests -> {folder}", file=sys.stderr)
        tiered.write(folder, 42, requests, tiered.DEFAULT_START_US)
    files = [str(folder / n) for n in (*tiered.SERVICES, *tiered.GATEWAYS)]
    size_mb = sum(Path(f).stat().st_size for f in files) / 1e6
    db = data / "bench-tiered.duckdb"
    runs: list[Run] = [
        measure([sys.executable, "-m", "bench.run_ingest", str(db), *files]) for _ in range(REPEATS)
    ]
    run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    stats = json.loads(run.stdout or "{}")
    lines = int(stats.get("lines", 0))
    print(f"\n== ingest: tiered set, {requests:,} requests = {lines:,} lines of Envoy + ECS"
          f" ({size_mb:.0f} MB), service files first ==")  # fmt: skip
    print(f"(median of {REPEATS}: " + ", ".join(f"{r.seconds:.2f} s" for r in runs) + ")")
    if lines:
        print(f"conflictradar ingest (join tiers, classify) {run.seconds:8.2f} s"
              f" {lines / run.seconds:>12,.0f} lines/s {run.peak_rss_mb:8.0f} MB;"
              f" in-process {stats['ingest_s']:.2f} s = {lines / stats['ingest_s']:,.0f} lines/s;"
              f" {stats['conflicts']:,} 409 requests")  # fmt: skip
    db.unlink(missing_ok=True)
