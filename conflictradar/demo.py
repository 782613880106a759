"""`conflictradar demo`: the main job on the bundled sample logs, wired from the packages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ingest.pipeline import Ingester, expand_paths
from ingest.query import open_readonly, run_query
from ingest.render import ingest_progress, print_ingest_report, print_table
from ingest.settings import Settings
from ingest.store import Store

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_logs" / "data"

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
        " WHERE cause = 'concurrent_update' ORDER BY ts LIMIT 5",
    ),
)


def run_demo(settings: Settings, out: TextIO) -> int:
    files = expand_paths([str(SAMPLE_DIR)])
    print(f"conflictradar demo: ingesting {len(files)} sample logs from {SAMPLE_DIR}",
          file=sys.stderr)  # fmt: skip
    with Store.open(settings.db, wait_s=5.0) as store, ingest_progress(files, False) as progress:
        report = Ingester(store, settings, progress=progress).ingest(files)
    print_ingest_report(report, out)
    con = open_readonly(settings.db, settings.sql)
    try:
        for title, sql in EXAMPLES:
            print(f'\n-- {title}\n$ conflictradar sql "{sql}"', file=out)
            print_table(run_query(con, sql, settings.sql).table, "table", out)
    finally:
        con.close()
    print(f"\nDatabase: {settings.db.resolve()} — query it with `conflictradar sql`.", file=out)
    return 0
