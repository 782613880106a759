"""Query results -> the terminal or a file: table, CSV, JSON, NDJSON (ISO 8601 times) or Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO
from uuid import UUID

from conflictradar.ingest.errors import UsageError
from conflictradar.ingest.escape import for_screen

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "ndjson", "parquet")


def choose_format(asked: str | None, output: Path | None, terminal: bool) -> str:
    """The format to write: the one asked for, else from the file's suffix, else table on a
    terminal and CSV on a pipe or file. Parquet never goes to a terminal."""
    fmt = asked
    if fmt is None and output is not None:
        suffix = output.suffix.lower().lstrip(".")
        fmt = {"parquet": "parquet", "ndjson": "ndjson", "jsonl": "ndjson", "json": "json"}.get(
            suffix, "csv"
        )
    fmt = fmt or ("table" if terminal else "csv")
    if fmt == "parquet" and output is None and terminal:
        raise UsageError("--format parquet writes binary data; add --output FILE or pipe it")
    return fmt


def iso(value: datetime) -> str:
    """ISO 8601 with a `T`; UTC as `Z`; times without a zone stay without one."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _plain(value: object) -> object:
    """What `json` cannot encode by itself, as the nearest JSON value."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def _rows(table: pa.Table) -> Iterator[dict[str, object]]:
    for batch in table.to_batches(max_chunksize=10_000):
        yield from batch.to_pylist()


def write_json(table: pa.Table, out: TextIO, *, lines: bool) -> None:
    """JSON: one array (`lines=False`) or one object per line (NDJSON)."""
    dump = json.JSONEncoder(default=_plain, ensure_ascii=False).encode
    if lines:
        for row in _rows(table):
            out.write(dump(row) + "\n")
        return
    out.write("[")
    for i, row in enumerate(_rows(table)):
        out.write((", " if i else "") + dump(row))
    out.write("]\n")


def write_parquet(table: pa.Table, sink: Path | BinaryIO) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, sink, compression="zstd")


def write_result(table: pa.Table, fmt: str, out: TextIO, binary: BinaryIO) -> None:
    """Write `table` as `fmt` to `out` (text formats) or `binary` (Parquet)."""
    if fmt == "parquet":
        write_parquet(table, binary)
    elif fmt in ("json", "ndjson"):  # on a terminal, control characters are shown, not sent
        write_json(table, for_screen(out), lines=fmt == "ndjson")
    else:
        from conflictradar.ingest.render import print_table

        print_table(table, fmt, out)
