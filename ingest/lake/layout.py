"""Where everything lives in a lake, and how a file appears there: whole, or not at all.

```
LAKE/
  requests/date=2025-06-02/hour=8/source=<id>/part-<start>-<end>.parquet   parsed lines
  request_minutes/date=.../hour=.../source=<id>/part-<start>-<end>.parquet per-minute rollups
  conflict_lines/date=.../hour=.../source=<id>/part-<start>-<end>.parquet  raw text of 409 lines
  rejects/source=<id>/part-<start>-<end>.parquet                           lines that did not parse
  conflicts/date=.../hour=.../part-0.parquet                               409s with their causes
  conflict_minutes/date=.../hour=.../part-0.parquet                        their per-minute rollup
  request_links/date=.../hour=.../part-0.parquet                           lines joined across tiers
  request_minutes_joined/date=.../hour=.../part-0.parquet                  -1 rollup rows for them
  _manifest/units/<id>-<start>-<end>.json      one per stored byte range (the commit record)
  _manifest/classified/<date>T<hour>.json      the inputs each hour's causes were computed from
  _manifest/folds.json                         endpoint positions folded to {id} across the lake
```

Every name is a function of the input (source identity and byte offsets, or the hour), and every
file is written under a hidden temporary name and renamed into place, so a retried task rewrites
the same names with the same bytes and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

MANIFEST = "_manifest"
UNITS = f"{MANIFEST}/units"
CLASSIFIED = f"{MANIFEST}/classified"
FOLDS = f"{MANIFEST}/folds.json"
LOCK = f"{MANIFEST}/ingest.lock"

# Tables written per parsed byte range, partitioned by hour and source.
UNIT_TABLES = ("requests", "request_minutes", "conflict_lines")
# Tables written per hour by classification: the 409s, their rollup, the lines joined across
# tiers into one request, and the request rollup's corrections for them (read as part of
# request_minutes).
CORRECTIONS = "request_minutes_joined"
HOUR_TABLES = ("conflicts", "conflict_minutes", "request_links", CORRECTIONS)
ALL_TABLES = (*UNIT_TABLES, "rejects", *HOUR_TABLES)

HOUR = timedelta(hours=1)


def hour_key(hour: datetime) -> str:
    """`2025-06-02T08`: an hour partition's name in the manifest."""
    return hour.astimezone(UTC).strftime("%Y-%m-%dT%H")


def parse_hour_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def hour_dir(table: str, hour: datetime) -> str:
    h = hour.astimezone(UTC)
    return f"{table}/date={h:%Y-%m-%d}/hour={h.hour}"


def unit_name(source: str, start: int, end: int) -> str:
    return f"{source}-{start:015d}-{end:015d}"


def unit_file(table: str, hour: datetime | None, source: str, start: int, end: int) -> str:
    """The relative path of one byte range's rows of `table` in `hour` (None: not by time)."""
    base = hour_dir(table, hour) if hour is not None else table
    return f"{base}/source={source}/part-{start:015d}-{end:015d}.parquet"


def hour_file(table: str, hour: datetime) -> str:
    return f"{hour_dir(table, hour)}/part-0.parquet"


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path beside `final`; renamed onto it (after fsync) when the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(final)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame, final: Path) -> None:
    with atomic_path(final) as tmp:
        frame.write_parquet(tmp, compression="zstd", statistics=True, row_group_size=256_000)


def write_json(data: Any, final: Path) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def data_files(lake: Path) -> Iterator[Path]:
    """Every Parquet file of every table (temporary files excluded)."""
    for table in ALL_TABLES:
        root = lake / table
        if root.is_dir():
            yield from (p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def temp_files(lake: Path) -> Iterator[Path]:
    """Temporary files a killed writer left behind."""
    for root, _dirs, files in os.walk(lake):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                yield Path(root) / name
