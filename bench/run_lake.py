"""In a child process: ingest files into a fresh lake on a Dask cluster; print figures as JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from conflictradar.ingest.lake.cluster import SPLIT_BYTES, ingest_to_lake, open_client
from conflictradar.ingest.settings import Settings


def main() -> None:
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
        report, hours = ingest_to_lake(client, args.paths, args.lake, Settings(),
                                       split_bytes=args.split_bytes)  # fmt: skip
        ingest_s = time.perf_counter() - ready
    size = sum(f.stat().st_size for f in args.lake.rglob("*") if f.is_file())
    print(json.dumps({
        "workers": workers, "lines": report.total("lines"), "parsed": report.total("parsed"),
        "hours": hours, "start_s": ready - started, "ingest_s": ingest_s,
        "lake_bytes": size,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
