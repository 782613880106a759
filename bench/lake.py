"""`python -m bench.lake`: lake ingest on 1 and 2 Dask workers against the one-machine ingest of
the same multi-host set, the lake's bytes per stored request, and dashboard page data-fetch
times over the lake.

`make bench` runs it on 20M lines (`--lines`, or BENCH_LAKE_LINES; `make bench LAKE_LINES=N`).
The generated set, the database and the lake go under `--data` (default /tmp/conflictradar-bench-
lake: several GB at 20M) and are deleted at the end unless `--keep`. Each variant runs in a child
process on a fresh store; figures are printed, never asserted. Workers are single-threaded
processes (`local:N`), so the per-core figures are lines per compute second of the workers' tasks
(from the Dask task stream), which a loaded machine slows less than the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from bench.gen_combined import write_combined
from bench.proc import Run, measure

DATA = Path(os.environ.get("BENCH_LAKE_DATA", "/tmp/conflictradar-bench-lake"))


def source_set(data: Path, lines: int, hosts: int) -> list[Path]:
    """`hosts` gateway logs over the same hours (nginx combined), `lines` in all."""
    folder = data / f"lake-src-{lines}-{hosts}"
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


def capacity(fig: dict[str, float], db_bytes: int, lines: int) -> None:
    """The capacity model's figures from one run's task stream."""
    parse = fig["parsed"] / fig["parse_s"] if fig.get("parse_s") else 0.0
    classify = fig["parsed"] / fig["classify_s"] if fig.get("classify_s") else 0.0
    per_core = fig["parsed"] / fig["task_s"] if fig.get("task_s") else 0.0
    per_request = fig["lake_bytes"] / max(fig["parsed"], 1)
    print("\n== capacity model (per worker core, from the Dask task stream) ==")
    print(f"parse + write:      {parse:>10,.0f} lines/s per core ({fig['parse_s']:.0f} s of tasks)")
    print(f"classify (explain): {classify:>10,.0f} requests/s per core"
          f" ({fig['classify_s']:.0f} s of tasks)")  # fmt: skip
    print(f"all tasks:          {per_core:>10,.0f} lines/s per core ({fig['task_s']:.0f} s)")
    if fig.get("cpu_s"):
        print(f"whole run:          {fig['parsed'] / fig['cpu_s']:>10,.0f} lines per CPU-second"
              f" (driver, scheduler and worker together: {fig['cpu_s']:.0f} s CPU)")  # fmt: skip
    print(f"stored:             {per_request:>10,.1f} bytes per request in the lake;"
          f" {db_bytes / max(lines, 1):,.1f} in the one-machine DuckDB")  # fmt: skip
    if per_core:
        core_h = 1e9 / per_core / 3600
        print(f"1 billion lines:    {core_h:,.1f} core-hours of tasks, ~{core_h * 60 / 16:,.0f} min"
              f" on 16 worker cores, ~{1e9 * per_request / 1e9:,.0f} GB of Parquet")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.lake")
    lines = int(os.environ.get("BENCH_LAKE_LINES", 20_000_000))
    p.add_argument("--lines", type=int, default=lines)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--runs", type=int, default=3, help="dashboard fetch runs per page")
    p.add_argument("--split-mb", type=int, default=64, help="byte range size (MB)")
    p.add_argument("--data", type=Path, default=DATA, help=f"scratch folder (default: {DATA})")
    p.add_argument("--keep", action="store_true", help="keep the generated set, database, lake")
    args = p.parse_args()
    try:
        run(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.data, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    files = source_set(args.data, args.lines, args.hosts)
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    py = sys.executable
    print(f"\n== lake ingest: {args.lines:,} lines in {args.hosts} gateway logs ({size_mb:.0f} MB),"
          " 2 shared cores ==")  # fmt: skip
    db = args.data / "lake-bench.duckdb"
    db.unlink(missing_ok=True)
    one = measure([py, "-m", "bench.run_ingest", str(db), *map(str, files)])
    one_fig = _figures(one)
    db_bytes = db.stat().st_size if db.exists() else 0
    ref = float(one_fig.get("ingest_s") or one.seconds)
    print(
        f"{'what':<40} {'ingest':>9} {'lines/s':>11} {'per worker':>11} {'start':>7}  vs one machine"
    )
    print(f"{'one machine (ingest --db)':<40} {ref:7.2f} s {args.lines / ref:>11,.0f}"
          f" {'':>11} {'':>7}  x1.00   CPU {one.cpu_s:.0f} s")  # fmt: skip
    lake = args.data / "lake-bench"
    best: dict[str, float] = {}
    for workers in (1, 2):
        child = measure([py, "-m", "bench.run_lake", str(lake), f"local:{workers}",
                         *map(str, files), "--split-bytes", str(args.split_mb << 20)])  # fmt: skip
        fig = _figures(child)
        if not fig:
            print(f"lake, {workers} worker(s): failed (see stderr)")
            continue
        secs = float(fig["ingest_s"])
        rate = fig["parsed"] / secs
        print(f"{f'lake, {workers} worker(s) (local:{workers})':<40} {secs:7.2f} s {rate:>11,.0f}"
              f" {rate / workers:>11,.0f} {fig['start_s']:5.1f} s  x{ref / secs:.2f}"
              f"   CPU {child.cpu_s:.0f} s")  # fmt: skip
        if workers == 1 or not best:
            best = {
                **fig,
                "cpu_s": child.cpu_s,
            }  # one worker: its tasks had a core each, the least disturbed figures
    if best:
        capacity(best, db_bytes, args.lines)
    print(
        "(the machine is shared with other engineers' tests: figures are noisy; 2 workers on"
        " 2 cores also share them with the driver)"
    )
    if (lake / "_manifest").is_dir():
        from bench.dashboard import measure as fetch_times
        from conflictradar.ingest.lake.reader import LakeReader
        from conflictradar.ingest.reader import open_reader
        from conflictradar.ingest.settings import SqlSettings, load_settings

        spans = {"1h": timedelta(hours=1), "all": None}
        print(f"\n== dashboard over the lake ({lake}) ==")
        fetch_times(LakeReader(lake, SqlSettings()), spans, args.runs)
        if db.exists():
            print(f"\n== for reference: dashboard over the one-machine database ({db}) ==")
            fetch_times(open_reader(load_settings(db=db, env={})), spans, args.runs)


if __name__ == "__main__":
    main()
