"""In a child process: ingest files into a fresh lake on a Dask cluster; print figures as JSON.

Besides the wall time, the Dask task stream gives each phase's compute seconds summed over the
workers (parse + write of byte ranges, classification of hours): lines per compute second is
the per-core throughput (workers are single-threaded), whatever else shares the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from conflictradar.ingest.lake.cluster import SPLIT_BYTES, ingest_to_lake, open_client
from conflictradar.ingest.settings import Settings


def compute_seconds(records: list[dict[str, Any]]) -> dict[str, float]:
    """Compute seconds per task kind (the key's prefix: parse, classify, count, ...)."""
    out: dict[str, float] = {}
    for rec in records:
        key = rec.get("key")
        kind = (key[0] if isinstance(key, tuple) else str(key)).split("-", 1)[0]
        for ss in rec.get("startstops", ()):
            if ss.get("action") == "compute":
                out[kind] = out.get(kind, 0.0) + ss["stop"] - ss["start"]
    return out


def main() -> None:
    from distributed import get_task_stream

    p = argparse.ArgumentParser()
    p.add_argument("lake", type=Path)
    p.add_argument("cluster")
    p.add_argument("paths", nargs="+")
    p.add_argument("--split-bytes", type=int, default=SPLIT_BYTES)
    args = p.parse_args()
    shutil.rmtree(args.lake, ignore_errors=True)
    started = time.perf_counter()
    with open_client(args.cluster) as client:
        workers = len(client.scheduler_info().get("workers", {}))
        ready = time.perf_counter()
        with get_task_stream(client) as stream:
            report, hours = ingest_to_lake(client, args.paths, args.lake, Settings(),
                                           split_bytes=args.split_bytes)  # fmt: skip
        ingest_s = time.perf_counter() - ready
        phases = compute_seconds(stream.data)
    size = sum(f.stat().st_size for f in args.lake.rglob("*") if f.is_file())
    print(json.dumps({
        "workers": workers, "lines": report.total("lines"), "parsed": report.total("parsed"),
        "hours": hours, "start_s": ready - started, "ingest_s": ingest_s,
        "lake_bytes": size, "parse_s": phases.get("parse", 0.0),
        "classify_s": phases.get("classify", 0.0), "count_s": phases.get("count", 0.0),
        "task_s": sum(phases.values()),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
