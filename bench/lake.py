"""`python -m bench.lake`: lake ingest on 1 and 2 Dask workers against the one-machine ingest of
the same multi-host set, the lake's bytes per stored request, and dashboard page data-fetch
times over the lake.

The issue asks for 20M lines; on a shared 2-core machine the default is 2M (`--lines`, or
BENCH_LAKE_LINES). Each variant runs in a child process on a fresh store; figures are printed,
never asserted. Workers are single-threaded processes (`local:N`), so lines/s per worker is
lines/s per core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from bench.gen_combined import write_combined
from bench.proc import Run, measure

DATA = Path(__file__).resolve().parents[1] / "bench_data"


def source_set(lines: int, hosts: int) -> list[Path]:
    """`hosts` gateway logs over the same hours (nginx combined), `lines` in all."""
    folder = DATA / f"lake-src-{lines}-{hosts}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(hosts):
        path = folder / f"gw-{i}.log"
        if not path.exists():
            print(f"generating {path}", file=sys.stderr)
            write_combined(path, lines // hosts, seed=i + 1)
        out.append(path)
    return out


def _figures(run: Run) -> dict[str, float]:
    """The child's JSON line (the last line of its stdout that holds one)."""
    for line in reversed((run.stdout or "").splitlines()):
        if line.startswith("{"):
            try:
                return dict(json.loads(line))
            except json.JSONDecodeError:
                break
    if run.stdout:
        print(f"bench: unexpected output: {run.stdout[-300:]!r}", file=sys.stderr)
    return {}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.lake")
    p.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LAKE_LINES", 2_000_000)))
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--runs", type=int, default=5, help="dashboard fetch runs per page")
    p.add_argument("--split-mb", type=int, default=32, help="byte range size (MB)")
    args = p.parse_args()
    files = source_set(args.lines, args.hosts)
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    py = sys.executable
    print(f"\n== lake ingest: {args.lines:,} lines in {args.hosts} gateway logs ({size_mb:.0f} MB),"
          " 2 shared cores ==")  # fmt: skip
    db = DATA / "lake-bench.duckdb"
    db.unlink(missing_ok=True)
    one = measure([py, "-m", "bench.run_ingest", str(db), *map(str, files)])
    one_fig = _figures(one)
    db_bytes = db.stat().st_size if db.exists() else 0
    db.unlink(missing_ok=True)
    ref = float(one_fig.get("ingest_s") or one.seconds)
    print(
        f"{'what':<40} {'ingest':>9} {'lines/s':>11} {'per worker':>11} {'start':>7}  vs one machine"
    )
    print(f"{'one machine (ingest --db)':<40} {ref:7.2f} s {args.lines / ref:>11,.0f}"
          f" {'':>11} {'':>7}  x1.00")  # fmt: skip
    lake = DATA / "lake-bench"
    per_request = 0.0
    for workers in (1, 2):
        run = measure([py, "-m", "bench.run_lake", str(lake), f"local:{workers}",
                       *map(str, files), "--split-bytes", str(args.split_mb << 20)])  # fmt: skip
        fig = _figures(run)
        if not fig:
            print(f"lake, {workers} worker(s): failed (see stderr)")
            continue
        secs = float(fig["ingest_s"])
        rate = fig["parsed"] / secs
        print(f"{f'lake, {workers} worker(s) (local:{workers})':<40} {secs:7.2f} s {rate:>11,.0f}"
              f" {rate / workers:>11,.0f} {fig['start_s']:5.1f} s  x{ref / secs:.2f}")  # fmt: skip
        per_request = fig["lake_bytes"] / max(fig["parsed"], 1)
    print(
        f"\nstored: lake {per_request:,.0f} bytes per request (Parquet, zstd, all tables);"
        f" one-machine DuckDB {db_bytes / max(args.lines, 1):,.0f} bytes per request"
    )
    print(
        "(the machine is shared with other engineers' tests: figures are noisy; 2 workers on"
        " 2 cores also share them with the driver)"
    )
    if (lake / "_manifest").is_dir():
        from bench.dashboard import measure as fetch_times
        from conflictradar.ingest.lake.reader import LakeReader
        from conflictradar.ingest.settings import SqlSettings

        print(f"\n== dashboard over the lake ({lake}) ==")
        fetch_times(LakeReader(lake, SqlSettings()),
                    {"1h": timedelta(hours=1), "all": None}, args.runs)  # fmt: skip


if __name__ == "__main__":
    main()
