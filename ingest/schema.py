"""The shape every format parser hands to the pipeline: one row per input line, canonical columns.

A parser takes a polars Series of decoded lines (no trailing newline) and returns a DataFrame of
exactly the same length and order, with the columns of PARSED (any subset; `finish` adds the rest
as nulls and casts them) plus two markers:

- `_reject` (String): null when the line parsed, else a short reason ("not a combined line",
  "bad timestamp", ...). The pipeline stores rejected lines in `rejects`.
- `_skip` (Boolean): true for a line that is not an access record at all (a start-up message,
  a header, a blank line). Skipped lines are counted, not rejected.

Parsers never raise on bad input, never drop or reorder rows, and never loop over rows in Python.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import polars as pl

from conflictradar.ingest.plans import Plan

UTC_TS = pl.Datetime("us", "UTC")

# Columns a parser may produce. `route` is an endpoint template the log itself carries
# (`http.route`, `routeKey`, `resourcePath`); `target` is the raw request-target (path plus query,
# possibly absolute-form) when the format does not split it: `finish` splits it.
PARSED: dict[str, pl.DataType] = {
    "ts": UTC_TS,
    "host": pl.String(),
    "client_ip": pl.String(),
    "user_agent": pl.String(),
    "method": pl.String(),
    "path": pl.String(),
    "query": pl.String(),
    "route": pl.String(),
    "status": pl.Int16(),
    "upstream_status": pl.Int16(),
    "bytes": pl.Int64(),
    "duration_ms": pl.Float64(),
    "request_id": pl.String(),
    "message": pl.String(),
}

MARKERS: dict[str, pl.DataType] = {"_reject": pl.String(), "_skip": pl.Boolean()}

# The validity rule for timestamps, applied to every format here in `finish` (and again in
# ingest.blocks after envelope times are merged in). A line is rejected, with the reason below, when
# its time is
# - before 1970-01-01 UTC: no HTTP server logged then; years like -2025 or 0001 are a writer's bug
#   or an unset clock, and Python's datetime cannot even represent some of them;
# - more than a day after the moment it is read: a line cannot be logged after it is read, and a
#   day of slack covers clock skew between machines and any offsetless time read in the wrong
#   zone (at most 14 h off). Years like 9999 would otherwise poison every time window after them.
# - more than a day away from both lines around it in the file while those two agree (see
#   `stray_glitch`, applied in ingest.blocks where the file order is known).
# Stored times therefore lie in [1970, now + 1 day], so `ts +/- window` can never overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
TOO_EARLY = "timestamp before 1970-01-01"
TOO_LATE = "timestamp more than a day in the future"
TIME_REASONS = (TOO_EARLY, TOO_LATE)


def time_problem(ts: pl.Expr, now: datetime | None = None) -> pl.Expr:
    """The reason `ts` breaks the validity rule above, or null (also for a null `ts`)."""
    return time_rule(ts, pl.lit(latest_allowed(now), pl.Int64))


def latest_allowed(now: datetime | None = None) -> int:
    """The latest valid time as microseconds since the epoch: `now` (the wall clock by default)
    plus FUTURE_SLACK. Passed into cached plans as a literal column (see `time_rule`)."""
    return epoch_us((now or datetime.now(UTC)) + FUTURE_SLACK)


def epoch_us(at: datetime) -> int:
    """Microseconds since the epoch, exactly; a naive datetime is UTC (as a polars literal of
    it was before the rule compared integers)."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return (at - EARLIEST) // timedelta(microseconds=1)


def time_rule(ts: pl.Expr, latest_us: pl.Expr) -> pl.Expr:
    """`time_problem` against `latest_us` (an Int64 expression, see `latest_allowed`), compared
    as integers: a datetime literal costs ~0.2 ms to build, more than the rest of a small
    block's check, and this expression can be built once and cached."""
    us = ts.dt.epoch("us")
    return (
        pl.when(us < 0)
        .then(pl.lit(TOO_EARLY))
        .when(us > latest_us)
        .then(pl.lit(TOO_LATE))
        .otherwise(pl.lit(None, pl.String))
    )


STRAY = "timestamp more than a day away from the lines around it"
# Lines whose times all lie within this many microseconds hold no stray time.
STRAY_SPAN_US = int(FUTURE_SLACK.total_seconds() * 1e6)


def stray_glitch(ts: pl.Expr, usable: pl.Expr) -> pl.Expr:
    """The second half of the rule, over a block's lines in file order: true for a usable line
    whose time is more than FUTURE_SLACK away from both the usable lines before and after it,
    while those two are within FUTURE_SLACK of each other: a glitch of one line (a clock that
    jumped and came back, a mangled date), rejected as STRAY. A quiet log whose lines are days
    apart keeps them all (its neighbours are far apart too). Such lines also made every time
    range built from a batch (classification, storage zone maps) span years. Unusable lines
    (rejected, skipped) are neither judged nor neighbours; `ts` must be set on usable lines."""
    slack = FUTURE_SLACK.total_seconds() * 1e6
    t = pl.when(usable).then(ts.dt.epoch("us").cast(pl.Float64))
    before = t.shift(1).fill_null(strategy="forward")
    after = t.shift(-1).fill_null(strategy="backward")
    glitch = (
        ((t - before).abs() > slack)
        & ((after - t).abs() > slack)
        & ((after - before).abs() <= slack)
    )
    return glitch.fill_null(False)


# Values that mean "absent" in access logs.
ABSENT = ["-", "", '""', "null", "NULL", "None", "(null)"]


def absent_to_null(expr: pl.Expr) -> pl.Expr:
    """Map the usual 'nothing here' spellings to null (strings only)."""
    return pl.when(expr.str.strip_chars().is_in(ABSENT)).then(None).otherwise(expr)


def split_target(target: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Split a request-target into (path, query); absolute-form targets lose scheme and host.

    `http://api.example.com/orders/1?x=1` -> (`/orders/1`, `x=1`); `*` stays `*`.
    """
    t = absent_to_null(target)
    without_origin = t.str.replace(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "")
    path_part = without_origin.str.replace(r"[?#].*$", "")
    path = pl.when(path_part == "").then(pl.lit("/")).otherwise(path_part)
    query = without_origin.str.extract(r"\?([^#]*)", 1)
    query = pl.when(query == "").then(None).otherwise(query)
    return path, query


def finish(frame: pl.DataFrame, now: datetime | None = None) -> pl.DataFrame:
    """Give a parser's frame the full canonical shape: every PARSED column cast, markers set.

    - A `target` column, if present and `path` is not, is split into `path` and `query`.
    - Missing columns become nulls; strings meaning "absent" become null.
    - A row with no timestamp, a timestamp that breaks the validity rule (`time_problem`, judged
      against `now`, the wall clock by default) or no status that is not already rejected or
      skipped is rejected.
    """
    return finish_lazy(frame.lazy(), frame.schema, now).collect()


def finish_lazy(
    lf: pl.LazyFrame, columns: Mapping[str, pl.DataType], now: datetime | None = None
) -> pl.LazyFrame:
    """`finish` as steps of a lazy query whose input has `columns` (so a parser collects once)."""
    latest = pl.lit(latest_allowed(now), pl.Int64).alias(_LATEST)
    return _finish_plan(tuple(columns.items())).apply(lf.with_columns(latest))


_LATEST = "_finish_latest"


@functools.lru_cache(maxsize=64)
def _finish_plan(columns: tuple[tuple[str, pl.DataType], ...]) -> Plan:
    """The steps of `finish` for an input of `columns`, built once per input shape."""
    schema = dict(columns)
    plan = Plan()
    if "target" in schema and "path" not in schema:
        path, query = split_target(pl.col("target"))
        extra = [path.alias("path")]
        if "query" not in schema:
            extra.append(query.alias("query"))
        plan = plan.with_columns(extra)
        schema.setdefault("path", pl.String())
        schema.setdefault("query", pl.String())
    exprs: list[pl.Expr] = []
    for name, dtype in PARSED.items():
        if name not in schema:
            exprs.append(pl.lit(None, dtype).alias(name))
        elif dtype == pl.String():
            exprs.append(absent_to_null(pl.col(name).cast(pl.String)).alias(name))
        elif schema[name] == dtype:
            exprs.append(pl.col(name))
        elif schema[name] == pl.String():
            exprs.append(absent_to_null(pl.col(name)).cast(dtype, strict=False).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype, strict=False).alias(name))
    skip = pl.col("_skip").fill_null(False) if "_skip" in schema else pl.lit(False)
    reject = pl.col("_reject") if "_reject" in schema else pl.lit(None, pl.String)
    plan = plan.select([*exprs, reject.alias("_reject"), skip.alias("_skip"), _LATEST])
    missing = (
        pl.when(pl.col("ts").is_null())
        .then(pl.lit("no valid timestamp"))
        .when(pl.col("status").is_null())
        .then(pl.lit("no valid status"))
        .otherwise(time_rule(pl.col("ts"), pl.col(_LATEST)))
    )
    return (
        plan.with_columns(
            pl.when(pl.col("_skip") | pl.col("_reject").is_not_null())
            .then(pl.col("_reject"))
            .otherwise(missing)
            .alias("_reject")
        )
        .with_columns(
            # A skipped line is never also a reject.
            pl.when(pl.col("_skip")).then(None).otherwise(pl.col("_reject")).alias("_reject")
        )
        .drop(_LATEST)
    )


def empty() -> pl.DataFrame:
    """A zero-row frame of the canonical shape."""
    return pl.DataFrame(schema={**PARSED, **MARKERS})
