"""A batch's rows as the store writes them (store stage): the file record, the rows, rejects and
409 lines of one commit, the per-minute rollup, and the inserts into their tables.

ingest.store opens the file and owns its transactions; what goes into them is here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from conflictradar.ingest.database import REQUEST_COLUMNS

AfterInsert = Callable[[duckdb.DuckDBPyConnection, datetime, datetime], object]


@dataclass(frozen=True)
class FileRecord:
    """What the store remembers about one file generation."""

    file_id: int
    path: str
    dev: int | None
    inode: int | None
    fp_len: int
    fp_hash: str
    read_offset: int
    lines: int
    tail_start: int | None
    tail_line: int | None
    format: str | None
    envelope: str | None
    parser_state: str | None
    compressed: bool


@dataclass(frozen=True)
class Batch:
    """One commit: one file's parsed rows, rejected lines, and the file's position after them.

    `requests` has REQUEST_COLUMNS (its `file` and `format` are stored from `file`); `rejects`
    has file, line, reason, raw; `conflict_lines` has file, line, ts, raw. `drop_line` removes a
    previously stored unterminated last line that this batch re-reads in full.
    """

    requests: pl.DataFrame
    rejects: pl.DataFrame
    conflict_lines: pl.DataFrame
    file: FileRecord
    drop_line: tuple[str, int] | None = None
    # The batch's per-minute rollup (`minute_rollup(requests)`); computed on commit if absent.
    # The pipeline computes it while parsing, off the writer's thread.
    minutes: pl.DataFrame | None = None


ROLLUP_KEYS = ("minute", "file", "host", "endpoint", "method", "status")


def minute_rollup(requests: pl.DataFrame) -> pl.DataFrame:
    """Requests per (minute, file, host, endpoint, method, status): the `request_minutes` rows."""
    return minute_query(requests.lazy()).collect()


def minute_query(requests: pl.LazyFrame) -> pl.LazyFrame:
    """`minute_rollup` as a lazy query (the parser collects it as suits the block's size)."""
    return requests.group_by(
        pl.col("ts").dt.truncate("1m").alias("minute"),
        "file",
        "host",
        "endpoint",
        "method",
        "status",
    ).agg(
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("bytes").sum().alias("bytes"),
        pl.col("duration_ms").sum().alias("duration_ms_sum"),
    )


# A batch is one file's rows: `file` and `format` go in as constants, which DuckDB stores far
# more cheaply than the same string repeated in every row of an Arrow column (measured: the
# insert of 2M rows took 0.4 s less).
_VARYING_COLUMNS = [c for c in REQUEST_COLUMNS if c not in ("file", "format")]
# The tables of a batch's lines, each filled from the Batch field of its name.
_LINE_TABLES = (("rejects", ("file", "line", "reason", "raw")),
                ("conflict_lines", ("file", "line", "ts", "raw")))  # fmt: skip
_REQUEST_SELECT = ", ".join("?::VARCHAR" if c in ("file", "format") else c for c in REQUEST_COLUMNS)


def _append(
    con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, select: str = "*",
    params: Sequence[object] = (),
) -> None:  # fmt: skip
    """INSERT INTO `table` SELECT `select` over `frame`, handed over as Arrow string views:
    DuckDB reads them directly (the default conversion to `large_string` copies every byte)."""
    con.register("_batch", frame.to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        con.execute(f"INSERT INTO {table} SELECT {select} FROM _batch", list(params))
    finally:
        con.unregister("_batch")


def drop_line(con: duckdb.DuckDBPyConnection, line: tuple[str, int] | None) -> None:
    """Remove a stored unterminated last line (file, line number) that is being read again in
    full, and take it back out of the rollup."""
    if line is None:
        return
    # Take the stored partial line back out of the rollup before deleting it.
    con.execute(
        "INSERT INTO request_minutes SELECT date_trunc('minute', ts), file, host,"
        " endpoint, method, status, -count(*), -sum(bytes), -sum(duration_ms)"
        " FROM requests WHERE file = ? AND line = ? GROUP BY ALL",
        list(line),
    )
    for table in ("requests", "rejects", "conflict_lines", "conflicts"):
        con.execute(f"DELETE FROM {table} WHERE file = ? AND line = ?", list(line))


def add_rows(con: duckdb.DuckDBPyConnection, batch: Batch) -> None:
    """`batch`'s rows, rejects, 409 lines and rollup (not its file record or drop_line)."""
    if batch.requests.height:
        _append(con, "requests", batch.requests.select(_VARYING_COLUMNS),
                _REQUEST_SELECT, [batch.file.path, batch.file.format])  # fmt: skip
        minutes = batch.minutes
        if minutes is None:
            minutes = minute_rollup(batch.requests)
        _append(con, "request_minutes", minutes)
    for table, columns in _LINE_TABLES:
        frame = getattr(batch, table)
        if frame.height:
            _append(con, table, frame.select(columns))


def add_batches(con: duckdb.DuckDBPyConnection, batches: Sequence[Batch]) -> None:
    """`add_rows` of several batches (files) with one insert per table: a batch's `file` and
    `format` become columns (for a few lines a file, an insert per table and file cost a
    watcher following many files more than the rows did)."""
    if len(batches) == 1:
        add_rows(con, batches[0])
        return
    with_rows = [b for b in batches if b.requests.height]
    if with_rows:
        # The batches' own `file` and `format` in a gather over their rows: per-frame columns
        # cost ~0.7 ms a batch.
        which = pl.Series(
            np.repeat(np.arange(len(with_rows)), [b.requests.height for b in with_rows])
        )
        named = {
            "file": pl.Series([b.file.path for b in with_rows], dtype=pl.String).gather(which),
            "format": pl.Series([b.file.format for b in with_rows], dtype=pl.String).gather(which),
        }
        requests = pl.concat([_columns(b.requests, REQUEST_COLUMNS) for b in with_rows],
                             how="vertical_relaxed")  # fmt: skip
        _append(con, "requests", requests.with_columns(**named))
        minutes = [minute_rollup(b.requests) if b.minutes is None else b.minutes for b in with_rows]
        _append(con, "request_minutes", pl.concat(minutes, how="vertical_relaxed"))
    for table, columns in _LINE_TABLES:
        frames = [_columns(getattr(b, table), columns) for b in batches
                  if getattr(b, table).height]  # fmt: skip
        if frames:
            _append(con, table, pl.concat(frames, how="vertical_relaxed"))


def _columns(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """`frame` with exactly `columns`, in order; as it is when it has them already (a select
    costs ~0.2 ms even then, for each of a look's 48 files)."""
    return frame if frame.columns == list(columns) else frame.select(columns)
