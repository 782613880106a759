"""Parse step for the access lines Python application servers write: uvicorn and Django's runserver.

lines -> frame of canonical columns (see `ingest.schema`), one regex per format.

- uvicorn (FastAPI, Starlette): `INFO:     127.0.0.1:65029 - "POST /enrollments HTTP/1.1" 409
  Conflict`. Its default format has no time: a line keeps ts null and is *not* rejected, so the
  block gives it its envelope's time, else the time it was read (`untimed`). Times it may carry
  are honoured: `docker logs -t`/`docker compose logs -t` stamps, a `%(asctime)s` prefix, or
  gunicorn's `[2026-06-18 15:38:34 +0000] [7] [INFO]` when run as a gunicorn UvicornWorker.
- django: `[20/Nov/2026 08:00:01] "POST /api/orders HTTP/1.1" 409 52` (`django.server` logger),
  the time in the server's local zone without an offset (`[ingest] timezone`).

Both servers write other lines into the same stream (start-up notices, `Not Found: /x`, tracebacks,
WebSocket handshakes). A line that carries no `HTTP/x` request line at all is skipped; one that
does but has not the format's shape is rejected, so nothing that looks like a request is lost.
"""

from __future__ import annotations

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.formats.clf import blank, run_query, valid_status, with_request
from conflictradar.ingest.timestamps import from_local, parse_iso

# Colour codes uvicorn and Django add when their output is a terminal (compose `tty: true`).
ANSI = r"\x1b\[[0-9;]*m"
# What makes a line a candidate request record: an HTTP request line between quotes.
_REQUEST_LINE = r'"[A-Za-z]+ \S* HTTP/\d'

_LEVEL = r"(?:TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL)"
_UVICORN_RE = (
    r"^(?:(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    rf"(?: *-)? +(?:{_LEVEL}(?: +-)? +)?)?"  # `docker logs -t` / `%(asctime)s [- LEVEL -]`
    rf"(?:\[(?P<gunicorn>\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{{4}})\] \[\d+\] \[{_LEVEL}\] )?"
    rf"(?:{_LEVEL}: *?)?"  # uvicorn's level prefix, `INFO:` padded to 9 characters
    r'(?P<client>\S*) - "(?P<request>[^"]*)" (?P<status>\d{3})(?: [A-Za-z][A-Za-z\' -]*)?\s*$'
)

_DJANGO_RE = (
    r"^\[(?P<time>\d\d/[A-Za-z]{3}/\d{4}[ :]\d\d:\d\d:\d\d)\] "
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-)\s*$'
)


def _common(lf: pl.LazyFrame, regex: str) -> pl.LazyFrame:
    """Colour codes off, the regex applied, skip/candidate markers set."""
    line = pl.col("line").str.replace_all(ANSI, "")
    return lf.with_columns(line.alias("line")).with_columns(
        pl.col("line").str.extract_groups(regex).alias("_m"),
        (blank(pl.col("line")) | ~pl.col("line").str.contains(_REQUEST_LINE)).alias("_skip"),
    )


def _uvicorn_query(lf: pl.LazyFrame) -> pl.LazyFrame:
    lf = _common(lf, _UVICORN_RE)
    m = pl.col("_m").struct
    iso = m.field("iso").str.replace(",", ".", literal=True)
    gunicorn = m.field("gunicorn").str.strptime(schema.UTC_TS, "%Y-%m-%d %H:%M:%S %z", strict=False)
    matched = m.field("status").is_not_null()
    lf = lf.with_columns(
        pl.coalesce(parse_iso(iso), gunicorn).alias("ts"),
        # `127.0.0.1:65029`, `::1:65029` (uvicorn never brackets IPv6): the port goes.
        m.field("client").str.replace(r":\d+$", "").alias("client_ip"),
        valid_status(m.field("status")).alias("status"),
        m.field("request").alias("_request"),
        (m.field("iso").is_null() & m.field("gunicorn").is_null()).alias("_untimed"),
        pl.when(pl.col("_skip") | matched)
        .then(None)
        .otherwise(pl.lit("not a uvicorn access line"))
        .alias("_reject"),
    )
    lf = with_request(lf, "_request")
    return lf.select("ts", "client_ip", "status", "method", "path", "query", "_reject", "_skip",
                     "_untimed")  # fmt: skip


def _django_query(lf: pl.LazyFrame) -> pl.LazyFrame:
    lf = _common(lf, _DJANGO_RE)
    m = pl.col("_m").struct
    naive = (
        m.field("time")
        .str.replace(r"(\d{4}):", "$1 ")
        .str.strptime(pl.Datetime("us"), "%d/%b/%Y %H:%M:%S", strict=False)
    )
    lf = lf.with_columns(
        from_local(naive).alias("ts"),
        valid_status(m.field("status")).alias("status"),
        m.field("bytes").cast(pl.Int64, strict=False).alias("bytes"),
        m.field("request").str.replace_all('\\"', '"', literal=True).alias("_request"),
        pl.when(pl.col("_skip") | m.field("status").is_not_null())
        .then(None)
        .otherwise(pl.lit("not a Django runserver line"))
        .alias("_reject"),
    )
    lf = with_request(lf, "_request")
    return lf.select("ts", "status", "bytes", "method", "path", "query", "_reject", "_skip")


def untimed(frame: pl.DataFrame, flags: pl.Series) -> pl.DataFrame:
    """`schema.finish`'s frame with the lines that carry no time of their own (`flags`) parsed:
    their ts stays null for the block to fill (envelope time, else the time read)."""
    lost = (
        flags.fill_null(False)
        & (frame["_reject"] == "no valid timestamp").fill_null(False)
        & frame["status"].is_not_null()
    )
    if not lost.any():
        return frame
    return frame.with_columns(
        pl.when(lost).then(None).otherwise(pl.col("_reject")).alias("_reject")
    )


def parse_uvicorn(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    got = run_query(lines, _uvicorn_query)
    return untimed(schema.finish(got.drop("_untimed")), got["_untimed"])


def parse_django(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    return schema.finish(run_query(lines, _django_query))


FORMATS: list[Format] = [
    Format(
        "uvicorn",
        parse_uvicorn,
        "uvicorn access log (FastAPI, Starlette); times from the line, its envelope or reading",
    ),
    Format("django", parse_django, "Django runserver / django.server access lines"),
]
