"""`make bench`: ingest throughput against wc -l, DuckDB's single-column scan and GoAccess.

A fourth reference says what the scan ratio can reach on this machine: DuckDB itself parsing the
same file with one regex and storing the `requests` columns (`bench.duckdb_parse`, a floor that
does less than an ingest); a fifth, DuckDB writing those columns already parsed (`--store-only`),
what storing them costs any ingest into a DuckDB file, before reading a byte.

Two files of the same size: `uniform` (8 endpoint shapes, ids below 200,000, ~3% 409s: the
file the first figures came from) and `realistic` (60,000 client IPs, ten endpoint shapes with
ids up to 10^7, 5% 409s, referers and query strings: `bench.gen_realistic`), which is what the
README's figures come from. Every figure is printed with its ratio to references measured in
the same run, since wall-clock times on a shared machine move with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.gen_combined import write_combined
from bench.gen_realistic import write_realistic
from bench.proc import Run, ensure_debian_package, measure
from bench.tiered import bench_tiered

DATA = Path(__file__).resolve().parents[1] / "bench_data"

REPEATS = 5
FILES: dict[str, Callable[[Path, int], Path]] = {
    "realistic": lambda path, lines: write_realistic(path, lines),
    "uniform": lambda path, lines: write_combined(path, lines),
}


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def _median_cpu(runs: list[Run]) -> float:
    return sorted(r.cpu_s for r in runs)[len(runs) // 2]


def _row(name: str, run: Run, lines: int, ref: float) -> str:
    rate = lines / run.seconds if run.seconds else 0.0
    return (f"{name:<44} {run.seconds:8.2f} s {rate:>12,.0f} lines/s {run.peak_rss_mb:8.0f} MB"
            f"   x{ref / run.seconds if run.seconds else 0:6.2f}")  # fmt: skip


def _store_only(py: str, db: Path, log: Path) -> Run:
    """DuckDB writing the parsed columns into a file, as a Run of the in-process time and CPU of
    that write alone (the parse before it is not counted)."""
    run = measure([py, "-m", "bench.duckdb_parse", str(db), str(log), "--store-only"])
    found = json.loads(run.stdout or "{}")
    if run.returncode != 0 or not found:
        return Run(0.0, run.peak_rss_mb, run.returncode, run.stdout)
    return Run(found["seconds"], run.peak_rss_mb, 0, run.stdout, found["cpu_s"])


def bench_ingest(kind: str, lines: int, repeats: int) -> None:
    DATA.mkdir(exist_ok=True)
    log = DATA / f"{kind}-{lines}.log"
    if not log.exists():
        print(f"generating {lines:,} {kind} combined lines -> {log}", file=sys.stderr)
        # In a child: a child forked from a parent that holds the generator's memory counts
        # those pages in its own peak RSS (measured: `wc -l` 16 MB -> 717 MB beside 700 MB).
        code = "import sys; from pathlib import Path; from bench.__main__ import FILES;" \
               " FILES[sys.argv[1]](Path(sys.argv[2]), int(sys.argv[3]))"  # fmt: skip
        subprocess.run([sys.executable, "-c", code, kind, str(log), str(lines)], check=True)
    size_mb = log.stat().st_size / 1e6
    py = sys.executable
    db = DATA / "bench.duckdb"
    print(f"\n== ingest, {kind} file: {lines:,} lines of nginx combined ({size_mb:.0f} MB),"
          f" {log.name} ==")  # fmt: skip
    print(f"{'what':<44} {'time':>10} {'throughput':>20} {'peak RSS':>11}   speed vs conflictradar")
    scan_cmd = [py, "-c", (
        "import duckdb,sys; print(duckdb.sql(\"SELECT count(*) FROM read_csv(?, header=false, "
        "columns={'l':'VARCHAR'}, delim=chr(1), quote='', escape='', auto_detect=false)\", "
        "params=[sys.argv[1]]).fetchall())"), str(log)]  # fmt: skip
    # The machine is noisy (runs vary by up to 40%): alternate the variants and the reference
    # scan, keep medians (one scan alone moved the ratio by 2x on a loaded machine).
    runs: dict[str, list[Run]] = {"with": [], "without": [], "scan": [], "duck": [], "store": []}
    loads = [os.getloadavg()[0]]
    for _ in range(repeats):
        runs["with"].append(measure([py, "-m", "bench.run_ingest", str(db), str(log)]))
        runs["scan"].append(measure(scan_cmd))
        runs["without"].append(
            measure([py, "-m", "bench.run_ingest", str(db), str(log), "--no-classify"])
        )
        runs["duck"].append(measure([py, "-m", "bench.duckdb_parse", str(db), str(log)]))
        runs["store"].append(_store_only(py, db, log))
        loads.append(os.getloadavg()[0])
    ours, noclass, scan = _median(runs["with"]), _median(runs["without"]), _median(runs["scan"])
    duck, store = _median(runs["duck"]), _median(runs["store"])
    stats = json.loads(ours.stdout or "{}")
    stats_nc = json.loads(noclass.stdout or "{}")
    print(f"(medians of {repeats} alternating runs; all runs, with classification: "
          + ", ".join(f"{r.seconds:.2f} s" for r in runs["with"]) + "; without: "
          + ", ".join(f"{r.seconds:.2f} s" for r in runs["without"]) + "; DuckDB scan: "
          + ", ".join(f"{r.seconds:.2f} s" for r in runs["scan"]) + "; DuckDB parse + store: "
          + ", ".join(f"{r.seconds:.2f} s" for r in runs["duck"]) + ")")  # fmt: skip
    ref = ours.seconds
    print(_row("conflictradar ingest (auto-detect, classify)", ours, lines, ref))
    print(_row("conflictradar ingest without classification", noclass, lines, ref))
    wc = measure(["wc", "-l", str(log)])
    print(_row("wc -l", wc, lines, ref))
    print(_row("DuckDB count(*) of the file as one column", scan, lines, ref))
    print(_row("DuckDB alone: one regex, same columns stored", duck, lines, ref))
    print(_row("DuckDB alone: storing them, already parsed", store, lines, ref))
    goaccess = ensure_debian_package("goaccess", "goaccess")
    ga: Run | None = None
    if goaccess:
        ga = measure(
            [goaccess, str(log), "--log-format=COMBINED", "-o", str(DATA / "goaccess.html")]
        )
        print(_row("GoAccess (HTML report)", ga, lines, ref))
    else:
        print("GoAccess: not available (see message above)")
    if stats:
        inner = stats["ingest_s"]
        print(f"\nin-process pipeline time (no interpreter start-up): {inner:.2f} s ="
              f" {lines / inner:,.0f} lines/s")  # fmt: skip
        print(f"conflictradar: {stats['parsed']:,} rows, {stats['rejected']:,} rejects, "
              f"{stats['conflicts']:,} conflicts classified")  # fmt: skip
        with_c, without_c = stats["ingest_s"], stats_nc.get("ingest_s") or 0.0
        over = (with_c - without_c) / without_c * 100 if without_c else 0.0
        print(f"classification adds {over:+.1f}% to ingest time "
              f"({with_c:.2f} s vs {without_c:.2f} s without, in-process; target <= 25%)")  # fmt: skip
    print(f"CPU (user+sys, medians): ingest {_median_cpu(runs['with']):.2f} s, without"
          f" classification {_median_cpu(runs['without']):.2f} s, DuckDB scan"
          f" {_median_cpu(runs['scan']):.2f} s, DuckDB parse + store"
          f" {_median_cpu(runs['duck']):.2f} s; machine load (1 min) during the runs"
          f" {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")  # fmt: skip
    vs_scan = ours.seconds / scan.seconds if scan.seconds else float("inf")
    print(f"\n{kind}: conflictradar took {vs_scan:.1f}x DuckDB's one-column scan of the same file"
          f" (target <= 10x: {'met' if vs_scan <= 10 else 'NOT met'})", end="")  # fmt: skip
    if ga is not None and ours.seconds:
        faster = ga.seconds / ours.seconds
        print(f"; {faster:.1f}x faster than GoAccess"
              f" (target >= 15x: {'met' if faster >= 15 else 'NOT met'})")  # fmt: skip
    else:
        print()
    if store.seconds and scan.seconds:
        print(f"{kind}: DuckDB writing the parsed columns alone took"
              f" {store.seconds / scan.seconds:.1f}x its one-column scan on all its threads, and"
              f" {store.cpu_s:.2f} s of CPU ({store.cpu_s / scan.seconds:.1f}x the scan's time):"
              f" on {os.cpu_count()} cores, storing alone holds any ingest of these columns to"
              f" at least {store.cpu_s / (os.cpu_count() or 1) / scan.seconds:.1f}x")  # fmt: skip
    # Every run, not only the median: a failed run's short time would move the median.
    bad = [r for r in runs["duck"]
           if r.returncode != 0 or json.loads(r.stdout or "{}").get("timed") != lines]  # fmt: skip
    if bad:
        print(f"{kind}: DuckDB's own parse + store failed or missed lines in {len(bad)} of"
              f" {len(runs['duck'])} runs (exit {bad[0].returncode}): no ratio to it")  # fmt: skip
    elif scan.seconds and duck.seconds:
        own, ratio = duck.seconds / scan.seconds, ours.seconds / duck.seconds
        print(f"{kind}: DuckDB's own parse + store of the file took {own:.1f}x its one-column"
              f" scan; conflictradar took {ratio:.2f}x DuckDB's parse + store, without"
              f" classification {noclass.seconds / duck.seconds:.2f}x (DuckDB's keeps no line"
              " numbers, rejects, raw 409 lines or rollups and explains nothing)")  # fmt: skip
    db.unlink(missing_ok=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="make bench")
    p.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LINES", 2_000_000)))
    p.add_argument("--files", default=os.environ.get("BENCH_FILES", "realistic,uniform"),
                   help="which generated files: realistic, uniform (comma-separated)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", REPEATS)))
    p.add_argument("--tiered-requests", type=int, default=500_000)  # about 1M lines
    args = p.parse_args()
    for kind in [k.strip() for k in args.files.split(",") if k.strip()]:
        if kind not in FILES:
            raise SystemExit(f"bench: unknown file kind {kind!r}; choose from {', '.join(FILES)}")
        bench_ingest(kind, args.lines, args.repeats)
    bench_tiered(DATA, args.tiered_requests)


if __name__ == "__main__":
    main()
