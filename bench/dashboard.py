"""`python -m bench.dashboard`: each dashboard page's data-fetch time on 10M requests.

Builds (once, then reuses) a database of 10M requests over 7 days, generated directly in DuckDB
SQL into the real schema (`ingest.store.Store`): 4 log files, 40 endpoints, 5,000 clients, spikes,
and ~1.5 % 409s of every cause (with the winning writes and first attempts that races and retries
need), rollups filled the way a batch commit fills them, causes from the real classifier. Then
runs every page's read functions, uncached, through the real read API and prints p50 / p95.
Target: p95 <= 1 s per page. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conflictradar.ingest import alert_reads, reads
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.reader import Reader, open_reader
from conflictradar.ingest.reads import DataStatus, Drill, Filters
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

DATA = Path(__file__).resolve().parents[1] / "bench_data"
NEWEST = datetime(2025, 6, 8, 0, 0, tzinfo=UTC)
DAYS = 7
FILES = ("/var/log/nginx/gw-a.log", "/var/log/nginx/gw-b.log", "/var/log/billing/access.jsonl",
         "/var/log/inventory/access.jsonl")  # fmt: skip
# template, methods, ids per endpoint (cardinality), weight, base 409 per mille, file index
ENDPOINTS = [
    ("/orders/{id}", "GET GET GET PUT PATCH DELETE", 200_000, 30, 20, 0),
    ("/orders", "GET POST", 1, 12, 15, 0),
    ("/orders/{id}/cancel", "POST", 200_000, 3, 60, 1),
    ("/orders/{id}/items/{id}", "GET PUT DELETE", 400_000, 8, 10, 1),
    ("/payments/{id}/capture", "POST", 100_000, 6, 40, 1),
    ("/payments", "GET POST", 1, 8, 12, 0),
    ("/invoices/{id}", "GET PATCH", 50_000, 6, 15, 2),
    ("/invoices/{id}/finalize", "POST", 50_000, 2, 80, 2),
    ("/subscriptions/{id}", "GET PATCH", 20_000, 5, 10, 2),
    ("/v1/skus/{id}/stock", "GET PATCH", 30_000, 9, 25, 3),
    ("/v1/reservations/{id}/confirm", "POST", 60_000, 3, 50, 3),
] + [(f"/api/v2/resource{i}/{{id}}", "GET GET GET PUT", 10_000, 1, 2, i % 4) for i in range(29)]
GEN_SQL = """
CREATE TEMP TABLE ep AS SELECT * FROM (VALUES {values})
    t(eid, template, methods, ids, weight, per_mille, fidx);
CREATE TEMP TABLE pick AS SELECT eid, template, string_split(methods, ' ') AS methods, ids,
    per_mille, fidx, sum(weight) OVER (ORDER BY eid) - weight AS lo, sum(weight) OVER (ORDER BY eid)
    AS hi FROM ep;
-- One row per unit of weight, so that picking an endpoint is an equality join.
CREATE TEMP TABLE slots AS SELECT unnest(range(lo::BIGINT, hi::BIGINT)) AS slot, * FROM pick;
CREATE TEMP TABLE g AS
SELECT i, hash(i) AS h,
       $start + to_microseconds((i * $span_us // $n + hash(i) % 1000000)::BIGINT) AS ts
FROM range($n) r(i);
CREATE TEMP TABLE base AS
SELECT g.ts, p.fidx, p.eid, p.template AS endpoint,
       replace(p.template, '{{id}}', 'x' || ((g.h >> 9) % p.ids)::VARCHAR) AS path,
       p.methods[(1 + (g.h >> 29) % len(p.methods))::BIGINT] AS method,
       ((g.h >> 37) % 5000)::BIGINT AS client, ((g.h >> 52) % 8)::BIGINT AS kind,
       CASE WHEN (g.h >> 41) % 1000 < p.per_mille
                 * (CASE WHEN hour(g.ts) IN (10, 11) AND p.eid % 3 = 0 THEN 4 ELSE 1 END) THEN 409
            WHEN (g.h >> 41) % 1000 > 985 THEN 404 WHEN (g.h >> 41) % 1000 > 983 THEN 500
            ELSE 200 END AS status
FROM g JOIN slots p ON p.slot = (g.h % $slots)::BIGINT;
CREATE TEMP TABLE rows AS
SELECT ts, fidx, endpoint, path, CASE WHEN status = 409 AND kind = 0 THEN 'PUT' ELSE method END
       AS method, client, status, kind,
       CASE WHEN status = 409 THEN [NULL, NULL, 'Stale version; reload and retry',
            'Resource already exists', 'Resource is locked by another operation',
            'Cannot transition from shipped to cancelled', NULL, NULL][kind + 1] END AS message,
       CASE WHEN status = 409 AND kind = 6 THEN 200::SMALLINT END AS upstream
FROM base
UNION ALL  -- the winning write 2 s before a lost race, by another client
SELECT ts - INTERVAL 2 SECOND, fidx, endpoint, path, 'PATCH', (client + 1) % 5000, 200, -1,
       NULL, NULL FROM base WHERE status = 409 AND kind = 0
UNION ALL  -- the first, successful attempt 3 s before a retry
SELECT ts - INTERVAL 3 SECOND, fidx, endpoint, path, method, client, 200, -1, NULL, NULL
FROM base WHERE status = 409 AND kind = 1;
INSERT INTO requests
SELECT ts, ($files)[fidx + 1], row_number() OVER (PARTITION BY fidx ORDER BY ts),
       'combined', ['api-a', 'api-b', 'billing', 'inventory'][fidx + 1] || '.example.com',
       '10.' || (client // 256)::VARCHAR || '.' || (client % 256)::VARCHAR || '.7',
       ['shop-web/3.2', 'ios-app/7.1', 'python-requests/2.31'][1 + client % 3], method, path,
       NULL, endpoint, status, upstream, 200 + client % 900, 5.0 + client % 90, NULL, message
FROM rows;
INSERT INTO request_minutes SELECT date_trunc('minute', ts), file, host, endpoint, method,
    status, count(*), sum(bytes), sum(duration_ms) FROM requests GROUP BY ALL;
INSERT INTO conflict_lines SELECT file, line, ts, client_ip || ' - - [' ||
    strftime(ts, '%d/%b/%Y:%H:%M:%S +0000') || '] "' || method || ' ' || path || ' HTTP/1.1" 409 '
    || bytes::VARCHAR FROM requests WHERE status = 409;
INSERT INTO files SELECT row_number() OVER (), f, NULL, NULL, 0, 'bench', 0, 0, NULL, NULL,
    'combined', NULL, NULL, false, now(), now() FROM unnest($files) t(f);
INSERT INTO meta VALUES ('bench_dashboard', $tag);
"""


def build(db: Path, n: int) -> None:
    tag = f"{n}:{NEWEST.isoformat()}:{len(ENDPOINTS)}"
    if db.exists():
        with Store.open(db) as store:
            row = store.con.execute(
                "SELECT value FROM meta WHERE key = 'bench_dashboard'"
            ).fetchone()
        if row and row[0] == tag:
            return
        db.unlink()
    print(f"building {db} with {n:,} requests (once; reused while the generator is unchanged)",
          file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    values = ", ".join(
        f"({i}, '{t}', '{m}', {ids}, {w}, {pm}, {f})"
        for i, (t, m, ids, w, pm, f) in enumerate(ENDPOINTS)
    )
    span = timedelta(days=DAYS)
    params = {"start": NEWEST - span, "span_us": int(span.total_seconds() * 1e6), "n": n,
              "files": list(FILES), "tag": tag, "slots": sum(e[3] for e in ENDPOINTS)}  # fmt: skip
    settings = load_settings(db=db, env={})
    with Store.open(db) as store, store.transaction() as con:
        for stmt in GEN_SQL.format(values=values).split(";\n"):
            if stmt.strip():
                used = {k: v for k, v in params.items() if f"${k}" in stmt}
                t = time.perf_counter()
                con.execute(stmt, used or None)
                print(f"  {time.perf_counter() - t:6.1f} s  {stmt.split(chr(10))[0][:60]}",
                      file=sys.stderr)  # fmt: skip
        generated = time.perf_counter()
        Classifier(settings.classify).classify_all(con)
    print(f"generated in {generated - started:.0f} s, classified in "
          f"{time.perf_counter() - generated:.0f} s", file=sys.stderr)  # fmt: skip


Page = Callable[[Reader, Filters], object]


def _status_and_options(r: Reader) -> DataStatus:
    """What every page pays first: the sidebar's status and options, the frame's status."""
    status = reads.data_status(r)
    reads.filter_options(r)
    reads.data_status(r)
    return status


def overview(r: Reader, f: Filters) -> object:
    reads.kpis(r, f)
    reads.kpis(r, f.previous())
    reads.timeline(r, f)
    reads.top_endpoints(r, f)
    return reads.cause_shares(r, f)


def hotspots(r: Reader, f: Filters) -> object:
    reads.endpoint_heatmap(r, f)
    reads.endpoint_causes(r, f)
    resources = reads.top_resources(r, f)
    reads.top_clients(r, f)
    # A drill-down is open: the top resource's conflicts and the newest one's raw line.
    drilled = replace(f, endpoints=(str(resources["endpoint"][0]),))
    rows = reads.conflict_rows(r, drilled, Drill(path=str(resources["path"][0])), 500)
    return reads.conflict_detail(r, str(rows["file"][0]), int(rows["line"][0]))


def causes(r: Reader, f: Filters) -> object:
    reads.cause_shares(r, f)
    reads.timeline(r, f)
    reads.cause_catalog(r)
    return reads.cause_examples(r, f)


def explorer(r: Reader, f: Filters) -> object:
    rows = reads.conflict_rows(r, f, Drill(), 500)
    reads.conflict_rows(r, f, Drill(text="already exists"), 500)
    return reads.conflict_detail(r, str(rows["file"][0]), int(rows["line"][0]))


def sql(r: Reader, f: Filters) -> object:
    reads.filters_sql(f)
    return r.user_query(reads.EXAMPLE_QUERIES[0][1])


def alerts(r: Reader, f: Filters) -> object:
    present = set(alert_reads.alert_columns(r)["table_name"].to_list())
    for table in ("alert_events", "deliveries"):
        if table in present:
            alert_reads.alert_rows(r, f, table)
    return present


PAGES: dict[str, Page] = {"Overview": overview, "Hotspots": hotspots, "Causes": causes,
                          "Explorer": explorer, "SQL": sql, "Alerts": alerts}  # fmt: skip


def measure(r: Reader, ranges: dict[str, timedelta | None], runs: int) -> None:
    print(f"\n== dashboard data fetch per page (uncached, {runs} runs each; target p95 <= 1 s) ==")
    print(f"{'page':<10} {'range':<6} {'p50':>8} {'p95':>8} {'max':>8}   verdict")
    worst = 0.0
    for name, page in PAGES.items():
        for label, span in ranges.items():
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                status = _status_and_options(r)
                assert status.newest is not None and status.oldest is not None
                end = status.newest + timedelta(minutes=1)
                f = Filters(end - span if span else status.oldest, end)
                page(r, f)
                times.append(time.perf_counter() - t)
            times.sort()
            p50 = statistics.median(times)
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            worst = max(worst, p95)
            print(f"{name:<10} {label:<6} {p50 * 1000:6.0f} ms {p95 * 1000:6.0f} ms "
                  f"{times[-1] * 1000:6.0f} ms   {'ok' if p95 <= 1.0 else 'SLOW'}")  # fmt: skip
    print(f"\nTARGET page fetch p95 <= 1 s: worst {worst:.2f} s -> "
          f"{'met' if worst <= 1.0 else 'NOT met'}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard")
    p.add_argument("--requests", type=int, default=10_000_000)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--db", type=Path, help="database to build and use (default: bench_data/)")
    args = p.parse_args()
    db = args.db or DATA / f"dashboard-{args.requests // 1_000_000}M.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    build(db, args.requests)
    r = open_reader(load_settings(db=db, env={}))
    status = reads.data_status(r)
    print(f"database: {db} ({db.stat().st_size / 1e9:.2f} GB): {status.requests:,} requests, "
          f"{status.conflicts:,} conflicts, {status.oldest:%Y-%m-%d} .. "
          f"{status.newest:%Y-%m-%d}")  # fmt: skip
    rollup = r.frame("SELECT (SELECT count(*) FROM request_minutes) AS r,"
                     " (SELECT count(*) FROM conflict_minutes) AS c").row(0)  # fmt: skip
    print(f"rollups: {rollup[0]:,} request_minutes rows, {rollup[1]:,} conflict_minutes rows")
    measure(r, {"24h": timedelta(hours=24), "7d": timedelta(days=7), "1h": timedelta(hours=1)},
            args.runs)  # fmt: skip


if __name__ == "__main__":
    main()
