"""A real Dask cluster for the lake tests: `dask scheduler` and `dask worker` processes on
127.0.0.1, and the row-for-row comparison of a lake with a one-machine database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from conflictradar.dashboard.server import stop_process
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.lake.reader import LakeReader
from conflictradar.ingest.settings import SqlSettings
from tests.kit import free_port

DASK = str(Path(sys.executable).with_name("dask"))

# The same question to both stores: every table, row for row (rollups summed per key, since
# both stores may hold a key's count in several rows).
COMPARED = {
    "requests": f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests ORDER BY file, line",
    "conflicts": "SELECT {conflict_columns} FROM conflicts ORDER BY file, line",
    "rejects": "SELECT file, line, reason, raw FROM rejects ORDER BY file, line",
    "conflict_lines": "SELECT file, line, ts, raw FROM conflict_lines ORDER BY file, line",
    "request_links": "SELECT file, line, ts, head_file, head_line, head_ts FROM request_links"
    " ORDER BY ALL",
    "request_minutes": "SELECT minute, file, host, endpoint, method, status, sum(requests)::BIGINT,"
    " sum(bytes)::BIGINT, round(sum(duration_ms_sum), 3) FROM request_minutes GROUP BY ALL"
    " HAVING sum(requests) <> 0 ORDER BY ALL",
    "conflict_minutes": "SELECT minute, file, host, endpoint, method, cause, sum(conflicts)::BIGINT"
    " FROM conflict_minutes GROUP BY ALL ORDER BY ALL",
}


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextmanager
def dask_cluster(tmp: Path, workers: int = 2, nanny: bool = True) -> Iterator[Cluster]:
    """A scheduler and `workers` single-threaded workers, stopped (all of them) at the end."""
    from distributed import Client

    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    log = (tmp / "dask.log").open("ab")
    sched = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log, stderr=log, env=env, cwd=tmp,
    )  # fmt: skip
    cluster = Cluster(address, sched)
    try:
        for i in range(workers):
            cmd = [DASK, "worker", address, "--nthreads", "1", "--no-dashboard",
                   "--host", "127.0.0.1", "--name", f"w{i}",
                   "--local-directory", str(tmp / f"worker-{i}")]  # fmt: skip
            if not nanny:
                cmd.append("--no-nanny")
            cluster.workers.append(subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=tmp))
        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
        yield cluster
    finally:
        for proc in cluster.workers:
            stop_process(proc, 5.0)
        stop_process(sched, 5.0)
        log.close()


def lake_tables(lake: Path) -> dict[str, pl.DataFrame]:
    reader = LakeReader(lake, SqlSettings(max_rows=10_000_000))
    cols = _conflict_columns(reader.frame("SELECT * FROM conflicts LIMIT 0").columns)
    return {t: reader.frame(q.format(conflict_columns=cols)) for t, q in COMPARED.items()}


def db_tables(db: Path) -> dict[str, pl.DataFrame]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        names = [d[0] for d in con.sql("SELECT * FROM conflicts LIMIT 0").description]
        cols = _conflict_columns(names)
        out = {}
        for t, q in COMPARED.items():
            frame = pl.from_arrow(con.sql(q.format(conflict_columns=cols)).to_arrow_table())
            assert isinstance(frame, pl.DataFrame)
            out[t] = frame
        return out
    finally:
        con.close()


def _conflict_columns(names: list[str]) -> str:
    return ", ".join(n for n in names if n not in ("date", "hour", "source"))


def assert_same(lake: Path, db: Path) -> dict[str, int]:
    """Every table of the lake equals the database's, row for row; returns the row counts."""
    mine, theirs = lake_tables(lake), db_tables(db)
    counts = {}
    for table in COMPARED:
        a, b = mine[table], theirs[table]
        assert a.columns == b.columns, table
        assert a.height == b.height, f"{table}: lake has {a.height} rows, database {b.height}"
        for col in a.columns:
            diff = a.filter(pl.Series(a[col].ne_missing(b[col])))
            assert diff.is_empty(), f"{table}.{col} differs, e.g. {diff.head(3).to_dicts()}"
        counts[table] = a.height
    return counts
