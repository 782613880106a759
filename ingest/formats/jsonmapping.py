"""Parse step for JSON logs described by a `[formats.NAME]` field mapping (`--format NAME`).

lines -> frame of canonical columns (see `ingest.schema`), through the same DuckDB extraction and
reject rules as the built-in JSON formats (`jsonrecords`). A dotted key path `req.method` reads the
nested key `req` -> `method`, or a literal key `"req.method"` when the log flattens its keys.
"""

from __future__ import annotations

import polars as pl

from conflictradar.ingest.formats import Format, ParseFn, ParserState
from conflictradar.ingest.formats.jsonrecords import (
    Keys,
    address,
    parse_records,
    scalar_text,
    target_columns,
    timestamp,
    to_float,
    to_int,
    upstream_status,
)
from conflictradar.ingest.mappings import FieldMapping
from conflictradar.ingest.schema import UTC_TS
from conflictradar.ingest.timestamps import from_local, parse_clf, parse_iso

_EPOCH_TO_US = {"epoch_s": 1e6, "epoch_ms": 1e3, "epoch_us": 1.0, "epoch_ns": 1e-3}
_DURATION_TO_MS = {"ms": 1.0, "s": 1e3, "us": 1e-3, "ns": 1e-6}


def _time(value: pl.Expr, encoding: str) -> pl.Expr:
    if encoding == "auto":
        return timestamp(value)
    if encoding == "iso8601":
        return parse_iso(value)
    if encoding == "clf":
        return parse_clf(value)
    if encoding in _EPOCH_TO_US:
        micros = value.str.strip_chars().cast(pl.Float64, strict=False) * _EPOCH_TO_US[encoding]
        return pl.from_epoch(
            micros.round(0).cast(pl.Int64, strict=False), time_unit="us"
        ).dt.replace_time_zone("UTC")
    if "%z" in encoding or "%:z" in encoding:
        return value.str.strptime(UTC_TS, encoding, strict=False)
    return from_local(value.str.strptime(pl.Datetime("us"), encoding, strict=False))


def mapping_format(mapping: FieldMapping) -> Format:
    def build(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
        def read(column: str) -> pl.Expr | None:
            path = mapping.path(column)
            if path is None:
                return None
            nested = path.replace(".", "/")
            return k.first(nested, path) if nested != path else k.col(path)

        def text(column: str) -> pl.Expr:
            got = read(column)
            return got if got is not None else pl.lit(None, pl.String)

        ts, status = read("ts"), read("status")
        assert ts is not None and status is not None  # required by the mapping's validation
        columns: dict[str, pl.Expr] = {
            "ts": _time(ts, mapping.ts_format),
            "host": text("host"),
            "client_ip": address(text("client_ip")),
            "user_agent": text("user_agent"),
            "method": text("method").str.to_uppercase(),
            **target_columns(text("path"), query=read("query")),
            "route": text("route"),
            "status": to_int(status),
            "upstream_status": upstream_status(text("upstream_status")),
            "bytes": to_int(text("bytes")),
            "duration_ms": to_float(text("duration_ms")) * _DURATION_TO_MS[mapping.duration_unit],
            "request_id": text("request_id"),
            "message": scalar_text(text("message")),
        }
        return columns, status.is_not_null()

    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        return parse_records(lines, mapping.name, build)

    fn: ParseFn = parse
    summary = f"JSON mapped by [formats.{mapping.name}]"
    return Format(mapping.name, fn, summary, family="json")
