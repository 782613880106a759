"""Timestamp parsing shared by the format parsers: every spelling in access logs -> UTC datetime.

All functions take and return polars expressions, so parsing stays vectorized. Offsets in the
text are honoured; a timestamp with no offset is taken as UTC.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import polars as pl

from conflictradar.ingest.schema import UTC_TS

# The zone of timestamps written without an offset (`[ingest] timezone`). The pipeline sets it
# around each parse; expressions read it when they are built.
_LOCAL_ZONE: contextvars.ContextVar[str] = contextvars.ContextVar("local_zone", default="UTC")


def current_zone() -> str:
    """The zone `local_zone` set (UTC outside any)."""
    return _LOCAL_ZONE.get()


@contextmanager
def local_zone(name: str) -> Iterator[None]:
    """Read offsetless timestamps as wall time in the IANA zone `name` inside the block."""
    token = _LOCAL_ZONE.set(name)
    try:
        yield
    finally:
        _LOCAL_ZONE.reset(token)


def check_zone(name: str) -> bool:
    """Whether `name` is a time zone polars knows (IANA names such as `Europe/Berlin`)."""
    try:
        pl.Series([0], dtype=pl.Datetime("us")).dt.replace_time_zone(name)
    except Exception:  # polars raises several types for unknown zones
        return False
    return True


def from_local(naive: pl.Expr) -> pl.Expr:
    """Naive datetimes as wall time in the current local zone, converted to UTC. A time that
    occurs twice (DST ends) takes the earlier instant; one that never occurs (DST starts) is
    null, so its line is rejected as having no valid timestamp instead of being misplaced."""
    zone = _LOCAL_ZONE.get()
    if zone == "UTC":
        return naive.dt.replace_time_zone("UTC")
    local = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC")


# `%.f` takes an optional fraction of a second (HAProxy, Apache `%{msec_frac}t`): one strptime
# for both spellings, ~6x cheaper than parsing the fraction separately.
CLF_LOCAL_FORMAT = "%d/%b/%Y:%H:%M:%S%.f"  # without an offset (HAProxy's accept date)
CLF_FORMAT = CLF_LOCAL_FORMAT + " %z"


def parse_clf(text: pl.Expr) -> pl.Expr:
    """`10/Oct/2025:13:55:36 +0200` (nginx $time_local, Apache %t, brackets optional), also with
    a fraction of a second: `05/Oct/2025:12:00:00.123 +0200`."""
    return text.str.strip_chars("[]").str.strptime(UTC_TS, CLF_FORMAT, strict=False)


def parse_iso(text: pl.Expr, naive_utc: bool = False) -> pl.Expr:
    """ISO 8601 / RFC 3339 with `T` or space, optional fraction, `Z` or `+hh:mm`/`+hhmm`.

    A value without any offset is wall time in the local zone (`[ingest] timezone`, UTC by
    default), or UTC where the format defines it so (`naive_utc`: IIS W3C, CloudFront).
    """
    cleaned = text.str.strip_chars().str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T")
    with_offset = cleaned.str.strptime(UTC_TS, "%+", strict=False)
    naive = cleaned.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)
    return pl.coalesce(
        with_offset, naive.dt.replace_time_zone("UTC") if naive_utc else from_local(naive)
    )


def parse_clf_local(text: pl.Expr) -> pl.Expr:
    """A CLF time without offset (`10/Oct/2025:13:55:36`, HAProxy's accept date), as wall time
    in the local zone."""
    return from_local(text.str.strptime(pl.Datetime("us"), CLF_LOCAL_FORMAT, strict=False))


def parse_epoch(value: pl.Expr) -> pl.Expr:
    """Unix time as number or numeric string; the unit (s, ms, us, ns) is inferred per value."""
    num = value.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    absval = num.abs()
    micros = (
        pl.when(absval < 1e11)
        .then(num * 1e6)
        .when(absval < 1e14)
        .then(num * 1e3)
        .when(absval < 1e17)
        .then(num)
        .otherwise(num / 1e3)
    )
    return pl.from_epoch(
        micros.round(0).cast(pl.Int64, strict=False), time_unit="us"
    ).dt.replace_time_zone("UTC")


def parse_any(text: pl.Expr) -> pl.Expr:
    """ISO 8601, CLF or epoch, whichever parses."""
    s = text.cast(pl.String)
    return pl.coalesce(
        parse_iso(s), parse_clf(s), parse_epoch(s.str.extract(r"^\s*(\d{9,19}(?:\.\d+)?)\s*$", 1))
    )


def later(ts: datetime, delta: timedelta) -> datetime:
    """`ts + delta`, held at the last representable instant instead of overflowing: a database
    written before the validity rule (ingest.schema) may hold a time like 9999-12-31."""
    ceiling = datetime.max.replace(tzinfo=ts.tzinfo)
    return ts + delta if ceiling - ts > delta else ceiling


def earlier(ts: datetime, delta: timedelta) -> datetime:
    """`ts - delta`, held at the first representable instant instead of overflowing."""
    floor = datetime.min.replace(tzinfo=ts.tzinfo)
    return ts - delta if ts - floor > delta else floor


def time_spans(
    ts: pl.Series, gap: timedelta = timedelta(hours=1), most: int = 16
) -> list[tuple[datetime, datetime]]:
    """The time ranges a batch's rows cover: runs of times no more than `gap` apart (at most
    `most` ranges, split at the widest gaps). A batch of lines from now plus one line that claims
    1978 covers two short ranges, not 48 years: work over a batch's time range (re-explaining its
    409s) must not grow with the distance between its times."""
    s = ts.drop_nulls().sort()
    if s.is_empty():
        return []
    gaps = s.diff().slice(1)
    wide = (gaps > gap).arg_true()
    if wide.len() >= most:
        widest = gaps.gather(wide).arg_sort(descending=True).head(most - 1)
        wide = wide.gather(widest).sort()
    cuts = wide.to_list()
    starts = [0, *(i + 1 for i in cuts)]
    ends = [*cuts, s.len() - 1]
    return [(s[a], s[b]) for a, b in zip(starts, ends, strict=True)]
