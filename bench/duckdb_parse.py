"""In a child process: DuckDB alone parses a combined log with one regex and stores the columns.

A second reference for the ingest bench, beside DuckDB's one-column scan: what parsing and
storing the same file costs DuckDB itself, with all its threads, into a table of the `requests`
columns (`CREATE TABLE AS`, compressed as DuckDB stores every table). It does less than an
ingest: no line numbers, no reject rows with their text, no 409 lines kept raw, no per-minute
rollups, integer path segments as the only endpoint template (two in a row: the first only), no
classification. So it is a floor for "parse and store" on this machine, not a rival. A line the
regex does not fit is stored with null fields. Prints the rows, how many of them have a time,
and the seconds as JSON.

`--store-only` times the store alone: the same columns are parsed into an in-memory table first
(not timed), then written into the file as a table (timed, with the CPU it took: all of
DuckDB's threads). What any ingest into a DuckDB file of these columns pays at least.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

# `ip ident user [time] "METHOD path?query PROTO" status bytes "referer" "agent"`.
COMBINED = (
    r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) ([^ ?"]*)\??([^ "]*)[^"]*" (\d+) (\d+) "([^"]*)"'
    r' "([^"]*)"'
)
GROUPS = ["ip", "ts", "method", "path", "query", "status", "bytes", "referer", "agent"]

SQL = """
CREATE TABLE requests AS
WITH raw AS (
    SELECT regexp_extract(l, $pattern, $groups) AS m
    FROM read_csv($log, header = false, columns = {'l': 'VARCHAR'}, delim = chr(1), quote = '',
                  escape = '', auto_detect = false)
)
SELECT try_strptime(m.ts, '%d/%b/%Y:%H:%M:%S %z') AS ts, $log AS file, NULL::BIGINT AS line,
       'combined' AS format, NULL::VARCHAR AS host, m.ip AS client_ip,
       nullif(m.agent, '-') AS user_agent, m.method, m.path, nullif(m.query, '') AS query,
       regexp_replace(m.path, '/[0-9]+(/|$)', '/{id}\\1', 'g') AS endpoint,
       TRY_CAST(m.status AS SMALLINT) AS status, NULL::SMALLINT AS upstream_status,
       TRY_CAST(m.bytes AS BIGINT) AS bytes, NULL::DOUBLE AS duration_ms,
       NULL::VARCHAR AS request_id, NULL::VARCHAR AS message
FROM raw
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db", type=Path)
    p.add_argument("log", type=Path)
    p.add_argument("--store-only", action="store_true", help="time only the write of the columns")
    args = p.parse_args()
    for stale in (args.db, Path(f"{args.db}.wal")):
        stale.unlink(missing_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(args.db), config={"preserve_insertion_order": False})
    con.execute("SET TimeZone = 'UTC'")
    params = {"pattern": COMBINED, "groups": GROUPS, "log": str(args.log)}
    if args.store_only:
        con.execute("ATTACH ':memory:' AS parsed")
        con.execute(SQL.replace("CREATE TABLE requests", "CREATE TABLE parsed.requests"), params)
        started, cpu = time.perf_counter(), time.process_time()
        con.execute("CREATE TABLE requests AS SELECT * FROM parsed.requests")
        con.execute("CHECKPOINT")
    else:
        con.execute(SQL, params)
    row = con.execute("SELECT count(*), count(ts) FROM requests").fetchone()
    con.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    args.db.unlink(missing_ok=True)
    print(json.dumps({"rows": row[0] if row else 0, "timed": row[1] if row else 0,
                      "seconds": seconds, "cpu_s": cpu}))  # fmt: skip


if __name__ == "__main__":
    main()
