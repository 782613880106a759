"""In a child process: ingest files into a fresh database and print lines, seconds, rows as JSON."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("paths", nargs="+")
    p.add_argument("--no-classify", action="store_true")
    p.add_argument("--format")
    args = p.parse_args()
    db = Path(args.db)
    db.unlink(missing_ok=True)
    settings = load_settings(
        db=db, env={k: v for k, v in os.environ.items() if k.startswith("CONFLICTRADAR_INGEST_")}
    )
    started = time.perf_counter()
    with Store.open(db) as store:
        ingester = Ingester(store, settings, forced=args.format, classify=not args.no_classify)
        report = ingester.ingest(expand_paths(args.paths))
        ingest_s = time.perf_counter() - started
        conflicts = store.con.execute("SELECT count(*) FROM conflicts").fetchone()
    print(json.dumps({
        "lines": report.total("lines"), "parsed": report.total("parsed"),
        "rejected": report.total("rejected"), "conflicts": conflicts[0] if conflicts else 0,
        "ingest_s": ingest_s,
        "total_s": time.perf_counter() - started,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
