"""What the workers run: count a range's lines, parse a range into Parquet, explain an hour's 409s.

Every task is a pure function of the lake's committed state and its arguments, writing only
deterministic names through atomic renames: Dask may run it again (a worker died, a retry) and
the lake ends the same. Parsing uses the one-machine block parser (`ingest.blocks.parse_block`);
causes come from the one-machine classifier (`ingest.classify.Classifier`) run on an in-memory
DuckDB holding the hour and its neighbours' edges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import duckdb
import polars as pl

from conflictradar.ingest.blocks import Context, Parsed, parse_block
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.database import DDL, REQUEST_COLUMNS
from conflictradar.ingest.errors import InputError
from conflictradar.ingest.formats import ParserState, get_format
from conflictradar.ingest.lake import layout
from conflictradar.ingest.lake.manifest import Unit, commit_unit
from conflictradar.ingest.rows import minute_rollup
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.sources import fingerprint, open_bytes, read_blocks

COUNT_CHUNK = 16 << 20


def context(settings: Settings) -> tuple[timedelta, timedelta]:
    """How much before and after an hour is loaded to explain it as one machine would: the
    rules look back their window, and a line joins the lines of its request within the join
    window on either side (twice: a competing request's own lines count too)."""
    join = timedelta(seconds=settings.classify.join_window_s)
    return Classifier(settings.classify).window + 2 * join, 2 * join


@dataclass(frozen=True)
class RangeTask:
    """One byte range of one source, as the driver planned it."""

    lake: str
    sid: str
    path: str
    dev: int
    inode: int
    compressed: bool
    fp_len: int
    fp_hash: str
    format_spec: str
    envelope: str | None
    start: int
    end: int  # -1: to the end of the (compressed) content
    first_line: int  # of the source's first range in this run; earlier ranges' counts add up


class _Bounded:
    """A reader over the next `limit` bytes of `fh` only."""

    def __init__(self, fh: object, limit: int) -> None:
        self._fh = fh
        self._left = limit

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, /) -> int:  # pragma: no cover - read_blocks from 0 never seeks
        raise OSError("not seekable")

    def read(self, n: int, /) -> bytes:
        data: bytes = self._fh.read(min(n, self._left))  # type: ignore[attr-defined]
        self._left -= len(data)
        return data


def count_lines(path: str, start: int, end: int) -> int:
    """Newlines in [start, end) of a plain file: the line numbers the next range starts at."""
    total = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(COUNT_CHUNK, left))
            if not chunk:
                break
            total += chunk.count(b"\n")
            left -= len(chunk)
    return total


def _check_identity(task: RangeTask) -> None:
    """The file still starts with the bytes the driver saw (not replaced meanwhile)."""
    try:
        with open_bytes(Path(task.path), task.compressed) as fh:
            head = fh.read(task.fp_len)
    except OSError as exc:
        raise InputError(f"cannot read {task.path}: {exc}") from exc
    if fingerprint(head) != task.fp_hash:
        raise InputError(f"{task.path} changed while it was being ingested; run again")


def _parse(task: RangeTask, ctx: Context, first_line: int) -> tuple[list[Parsed], int, int]:
    """Parse the range block by block; (blocks, lines, end offset reached)."""
    cfg = ctx.settings.ingest
    fmt = get_format(task.format_spec)
    state = ParserState()
    out: list[Parsed] = []
    with open_bytes(Path(task.path), task.compressed) as raw:
        fh: BinaryIO | _Bounded = raw
        base, origin = 0, task.start
        if not task.compressed:
            raw.seek(task.start)
            fh, base, origin = _Bounded(raw, task.end - task.start), task.start, 0
        line, lines = first_line, 0
        pending: bytes | bytearray = b""
        pending_start = task.start
        end = task.start
        # A small range needs no 32 MB buffer (allocating one costs more than parsing it).
        block_bytes = (
            cfg.block_bytes if task.compressed else min(cfg.block_bytes, task.end - task.start + 1)
        )
        for block in read_blocks(fh, origin, block_bytes=block_bytes,
                                 max_line_bytes=cfg.max_line_bytes,
                                 take_unterminated=task.compressed):  # fmt: skip
            bstart = pending_start if pending else block.start + base
            data = pending + block.data if pending else block.data
            shift = pending.count(b"\n") if pending else 0
            oversize = tuple((i + shift, n) for i, n in block.oversize)
            parsed = parse_block(data, bstart, line, block.unterminated, oversize, fmt,
                                 task.envelope, state, ctx, task.path,
                                 final=block.unterminated)  # fmt: skip
            if parsed.folds:
                ctx = replace(ctx, folds=ctx.folds + parsed.folds)
            pending = data[parsed.end - bstart :]
            pending_start = parsed.end
            line += parsed.lines
            lines += parsed.lines
            end = parsed.end
            out.append(parsed)
        if pending:  # the range's last lines an envelope held back: the range ends here
            parsed = parse_block(pending, pending_start, line, False, (), fmt, task.envelope,
                                 state, ctx, task.path, final=True)  # fmt: skip
            lines += parsed.lines
            end = parsed.end
            out.append(parsed)
    return out, lines, end


def _by_hour(frame: pl.DataFrame, column: str) -> dict[datetime, pl.DataFrame]:
    if frame.is_empty():
        return {}
    parts = frame.with_columns(pl.col(column).dt.truncate("1h").alias("_hour")).partition_by(
        "_hour", as_dict=True, include_key=False, maintain_order=True
    )
    return {key[0]: part for key, part in parts.items()}


def parse_range(task: RangeTask, ctx: Context, *earlier_counts: int) -> Unit:
    """Store one byte range: rows by hour, rollups, 409 raw lines, rejects; then its record."""
    from conflictradar.ingest.endpoints import Fold, apply_folds

    _check_identity(task)
    first_line = task.first_line + sum(earlier_counts)
    blocks, lines, end = _parse(task, ctx, first_line)
    if not task.compressed and end != task.end:
        raise InputError(f"{task.path}: read stopped at byte {end}, expected {task.end}")
    folds: tuple[Fold, ...] = tuple(f for b in blocks for f in b.folds)
    requests = pl.concat([b.requests for b in blocks]) if blocks else pl.DataFrame()
    if folds and requests.height:  # a fold learned late applies to the range's earlier rows too
        requests = requests.with_columns(apply_folds(pl.col("endpoint"), list(folds)))
    lake = Path(task.lake)
    start, sid = task.start, task.sid
    files: list[str] = []
    hours: list[str] = []

    def put(frame: pl.DataFrame, table: str, hour: datetime | None) -> None:
        rel = layout.unit_file(table, hour, sid, start, end)
        layout.write_parquet(frame, lake / rel)
        files.append(rel)

    if requests.height:
        requests = requests.sort("ts", "line")
        for hour, part in _by_hour(requests, "ts").items():
            hours.append(layout.hour_key(hour))
            put(part, "requests", hour)
            put(minute_rollup(part), "request_minutes", hour)
        conflict_lines = pl.concat([b.conflict_lines for b in blocks])
        for hour, part in _by_hour(conflict_lines, "ts").items():
            put(part, "conflict_lines", hour)
    rejects = pl.concat([b.rejects for b in blocks]) if blocks else pl.DataFrame()
    if rejects.height:
        put(rejects, "rejects", None)
    ts = requests["ts"] if requests.height else None
    unit = Unit(
        source=sid, path=task.path, dev=task.dev, inode=task.inode, compressed=task.compressed,
        fp_len=task.fp_len, fp_hash=task.fp_hash, start=start, end=end, first_line=first_line,
        lines=lines, parsed=requests.height, rejected=rejects.height,
        skipped=sum(b.skipped for b in blocks),
        conflicts=sum(b.conflict_lines.height for b in blocks),
        format=get_format(task.format_spec).name, format_spec=task.format_spec,
        envelope=task.envelope, hours=tuple(hours), files=tuple(files),
        folds=tuple((f.prefix, f.position) for f in folds),
        time_range=(ts.min().isoformat(), ts.max().isoformat()) if ts is not None else None,  # type: ignore[union-attr]
    )  # fmt: skip
    commit_unit(lake, unit)
    return unit


@dataclass(frozen=True)
class HourTask:
    """Explain the 409s of a run of consecutive hours, from the requests files of those hours
    and the hours on either side (their context)."""

    lake: str
    hours: tuple[str, ...]  # hour keys, consecutive
    files: tuple[str, ...]  # relative paths of the requests files to load
    inputs: tuple[tuple[str, ...], ...]  # per hour: the names of the units it depends on


def classify_hours(task: HourTask, settings: Settings) -> int:
    """Write each hour's conflicts and conflict rollup (or remove them: no 409s), then its
    marker. Returns the number of conflicts."""
    lake = Path(task.lake)
    first = layout.parse_hour_key(task.hours[0])
    last = layout.parse_hour_key(task.hours[-1]) + layout.HOUR
    con = duckdb.connect(":memory:", config={"threads": 1, "preserve_insertion_order": False})
    total = 0
    before, after = context(settings)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(DDL)
        if task.files:
            paths = [str(lake / f) for f in task.files]
            con.execute(
                f"INSERT INTO requests SELECT {', '.join(REQUEST_COLUMNS)}"
                " FROM read_parquet($files, hive_partitioning = false)"
                " WHERE ts >= $lo AND ts < $hi",
                {"files": paths, "lo": first - before, "hi": last + after},
            )  # fmt: skip
        # Rules look back at most their window: with the hours' context loaded, their 409s get
        # the causes the one-machine database gives them.
        Classifier(settings.classify).classify_range(con, first, last)
        for key, inputs in zip(task.hours, task.inputs, strict=True):
            lo = layout.parse_hour_key(key)
            hi = lo + layout.HOUR
            n = _export(con, "conflicts", "ts", lake / layout.hour_file("conflicts", lo), lo, hi)
            _export(con, "conflict_minutes", "minute",
                    lake / layout.hour_file("conflict_minutes", lo), lo, hi)  # fmt: skip
            # Lines joined into another line's request: the links, and the rollup's -1 rows
            # for them (this database's request_minutes holds nothing else).
            _export(con, "request_links", "ts",
                    lake / layout.hour_file("request_links", lo), lo, hi)  # fmt: skip
            _export(con, "request_minutes", "minute",
                    lake / layout.hour_file(layout.CORRECTIONS, lo), lo, hi)  # fmt: skip
            layout.write_json(
                {"hour": key, "inputs": list(inputs), "conflicts": n},
                lake / layout.CLASSIFIED / f"{key}.json",
            )
            total += n
    finally:
        con.close()
    return total


def _export(
    con: duckdb.DuckDBPyConnection, table: str, column: str, final: Path, lo: datetime,
    hi: datetime,
) -> int:  # fmt: skip
    table_ = con.sql(
        f"SELECT * FROM {table} WHERE {column} >= $lo AND {column} < $hi ORDER BY ALL",
        params={"lo": lo, "hi": hi},
    ).to_arrow_table()
    frame = pl.from_arrow(table_)
    assert isinstance(frame, pl.DataFrame)
    if frame.is_empty():
        final.unlink(missing_ok=True)
    else:
        layout.write_parquet(frame, final)
    return frame.height
