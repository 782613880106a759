"""How a JSON format reads its records (parse stage): key expressions, value converters, rejects.

A format is a `Build`: given a `Keys`, it returns an expression per canonical column and one that
says whether a JSON object is a record of the format. `parse_records` calls it once to learn which
key paths it reads, has `jsonpaths` extract them, and calls it again over the extracted strings:
everything after the extraction is polars expressions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import ParserState
from conflictradar.ingest.formats.jsonpaths import extract_present
from conflictradar.ingest.timestamps import (
    current_zone,
    local_zone,
    parse_clf,
    parse_epoch,
    parse_iso,
)


class Keys:
    """Hands out expressions for key paths and remembers which paths a format reads."""

    def __init__(self, available: set[str] | None = None) -> None:
        self.used: dict[str, None] = {}
        self.available = available

    def col(self, path: str) -> pl.Expr:
        """The value at `path`; "-", "" and the other spellings of nothing are null."""
        self.used[path] = None
        if self.available is not None and path not in self.available:
            return pl.lit(None, pl.String)  # no line of the batch has it: skip the work
        return pl.col(path)

    def first(self, *paths: str) -> pl.Expr:
        """The first of `paths` that holds a value."""
        return pl.coalesce([self.col(p) for p in paths])

    def each(self, paths: Iterable[str], convert: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
        """The first of `paths` whose value converts (a bad `time` does not hide `timestamp`)."""
        return pl.coalesce([convert(self.col(p)) for p in paths])

    def present(self, *paths: str) -> pl.Expr:
        return pl.any_horizontal([self.col(p).is_not_null() for p in paths])


def keys(words: str) -> tuple[str, ...]:
    return tuple(words.split())


def to_int(e: pl.Expr) -> pl.Expr:
    """409, "409", " 409", 409.0 -> 409."""
    plain = e.cast(pl.Int64, strict=False)
    odd = pl.when(plain.is_null()).then(e)  # only the odd spellings pay for the regex
    return pl.coalesce(
        plain, odd.str.extract(r"^\s*(-?\d+)(?:\.0*)?\s*$", 1).cast(pl.Int64, strict=False)
    )


def to_float(e: pl.Expr) -> pl.Expr:
    return e.str.strip_chars().cast(pl.Float64, strict=False)


def upstream_status(e: pl.Expr) -> pl.Expr:
    """The final code of `502, 200` or `502 : 200` (retries); 0 means no upstream answered."""
    code = e.str.extract(r"(\d{3})\D*$", 1).cast(pl.Int64, strict=False)
    return pl.when(code > 0).then(code)


_GO_UNITS = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "ms": 1.0,
    "s": 1e3,
    "m": 6e4,
    "h": 3.6e6,
}


def go_duration_ms(e: pl.Expr) -> pl.Expr:
    """`1.5ms`, `2s`, `350µs` (Go's time.Duration text) -> milliseconds."""
    parts = e.str.extract_groups(r"^\s*(\d*\.?\d+)\s*(ns|us|µs|μs|ms|s|m|h)\s*$")
    value = parts.struct.field("1").cast(pl.Float64, strict=False)
    factor = parts.struct.field("2").replace_strict(
        _GO_UNITS, default=None, return_dtype=pl.Float64
    )
    return value * factor


def address(e: pl.Expr) -> pl.Expr:
    """First address of an X-Forwarded-For style list, without port or IPv6 brackets."""
    bare = e.str.contains(r"^[0-9a-fA-F.]+$|^[0-9a-fA-F]*:[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$")
    odd = pl.when(~bare).then(e)  # only lists, ports and brackets pay for the big regex
    parts = odd.str.extract_groups(
        r"^\s*(?:\[([^\]]*)\](?::\d*)?|([^\s,:]+):\d+\s*(?:,|$)|([^\s,]+))"
    )
    return pl.coalesce(
        pl.when(bare).then(e),
        parts.struct.field("1"),
        parts.struct.field("2"),
        parts.struct.field("3"),
    )


_JSON_ARRAY = r'^\s*\[\s*(?:\]|["{\[\d-]|true|false|null).*\]\s*$'
_BRACKETED_TEXT = r"\]\s*[:\[]|\]\s+[A-Za-z]"  # `[index][id]: text`, `[id] text`


def scalar_text(e: pl.Expr) -> pl.Expr:
    """Drop values that are not text: objects, arrays, booleans, bare numbers."""
    not_text = e.str.contains(r"^\s*(?:\{.*\}|true|false|-?[\d.]+)\s*$")
    # An array is JSON, but `[orders][42]: version conflict ...` (Elasticsearch) is text.
    array = e.str.contains(_JSON_ARRAY) & ~e.str.contains(_BRACKETED_TEXT)
    return pl.when(not_text | array).then(None).otherwise(e)


def timestamp(e: pl.Expr) -> pl.Expr:
    """ISO 8601, Unix time (s/ms/us/ns, number or string) or CLF, whichever the value is.

    Unix time needs 9+ integer digits (1973 on): a small number is a duration logged under a
    time-like key, and 0 is OTLP's "unset". Each parser only sees the values shaped for it.
    """
    iso = e.str.contains(r"^\s*\d{4}-\d\d-\d\d")
    number = e.str.contains(r"^\s*-?\d+(?:\.\d+)?\s*$")
    epoch = e.str.contains(r"^\s*\d{9,19}(?:\.\d+)?\s*$")
    return pl.coalesce(
        parse_iso(pl.when(iso).then(e)),
        parse_epoch(pl.when(epoch).then(e)),
        parse_clf(pl.when(~iso & ~number).then(e)),
    )


# Error-specific keys win over a generic log message (SPEC section 3).
ERROR_KEYS = keys(
    "error/message error.message errorMessage error_message errorMsg error err reason"
)
GENERIC_KEYS = keys("message msg")


def message(
    k: Keys, errors: Sequence[str], generic: Sequence[str], method: pl.Expr, path: pl.Expr
) -> pl.Expr:
    """Error/reason text. A generic message that merely restates the request (`GET /x ...`, the
    raw access line some shippers keep in `message`) is not a reason and is dropped."""
    error = pl.coalesce([scalar_text(k.col(p)) for p in errors])
    if not generic:
        return error
    text = pl.coalesce([scalar_text(k.col(p)) for p in generic])
    restates = text.str.contains(pl.concat_str([method, pl.lit(" "), path]), literal=True)
    return pl.coalesce(error, pl.when(restates.fill_null(False)).then(None).otherwise(text))


def target_columns(
    target: pl.Expr, path: pl.Expr | None = None, query: pl.Expr | None = None
) -> dict[str, pl.Expr]:
    """`path` and `query` columns from a raw request-target, preferring separate fields."""
    plain = target.str.contains(r"^/[^?#]*$")  # the common case needs no splitting
    split_path, split_query = schema.split_target(pl.when(~plain).then(target))
    split_path = pl.coalesce(pl.when(plain).then(target), split_path)
    if path is not None:
        split_path = pl.coalesce(path.str.replace(r"[?#].*$", ""), split_path)
    if query is not None:
        split_query = pl.coalesce(query, split_query)
    return {"path": split_path, "query": split_query}


# A JSON line that is not a record of the format is skipped (not rejected) when it looks like an
# application log line (start-up, TLS, config reload...) and carries nothing HTTP.
_APP_HINT = r'"(?:level|lvl|msg|message|severity|severityText|logger|log\.level)"\s*:'
# The same for a text line among JSON ones: `DEBUG: plugin ...`, `INFO ...`, `time="..." level=...`.
_PLAIN_APP_LINE = (
    r"^\s*(?:\[?[0-9][0-9:./TZ+ -]*\]?\s+)?(?:DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|TRACE|FATAL"
    r"|DBG|INF|WRN|ERR|FTL)\b|^\s*time=\S+ level="
)
_HTTP_HINT = (
    r'"(?:[Ss]tatus|status_?[Cc]ode|[Rr]esponse_?[Cc]ode|[Mm]ethod|request_?[Mm]ethod|http[_.]?'
    r"[Mm]ethod|httpMethod|http\.request\.method|http\.response\.status_code|DownstreamStatus"
    r'|RequestMethod)"\s*:'
)

Build = Callable[[Keys], tuple[dict[str, pl.Expr], pl.Expr]]


@functools.lru_cache(maxsize=256)
def _built(
    build: Build, available: frozenset[str] | None, zone: str
) -> tuple[Keys, tuple[dict[str, pl.Expr], pl.Expr]]:
    """`build` over the keys `available` (None: every key, to learn which it reads), once per
    format, set of keys present and local zone: building a JSON format's expressions cost a few
    thousand Python calls, ~10 ms a block, which `watch` paid for every file every look."""
    keys_ = Keys(set(available) if available is not None else None)
    with local_zone(zone):
        return keys_, build(keys_)


def parse_records(
    lines: pl.Series,
    name: str,
    build: Build,
    augment: Callable[[pl.DataFrame, pl.Series], pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Extract the keys `build` reads, evaluate its columns, set `_reject` / `_skip`."""
    text = lines.cast(pl.String).fill_null("")
    values = extract_present(text, list(_built(build, None, current_zone())[0].used))
    read = [c for c in values.columns if c != "_json"]
    values = values.with_columns(
        pl.when(pl.col(p).is_in(schema.ABSENT)).then(None).otherwise(pl.col(p)).alias(p)
        for p in read
    )
    _, (columns, is_record) = _built(build, frozenset(read), current_zone())
    columns = dict(columns)  # the cached dict stays as built
    if augment is not None:
        values = augment(values, text)
    if "duration_ms" in columns:  # whole nanoseconds: no float noise from unit conversions
        columns["duration_ms"] = columns["duration_ms"].round(6)
    frame = values.select(
        *[e.alias(col) for col, e in columns.items()],
        pl.col("_json"),
        ((pl.col("_json") == "object") & ~is_record.fill_null(False)).alias("_other"),
    )
    # A format may mark lines it knows are not requests (`_skip`); only JSON objects qualify.
    own = frame["_skip"] if "_skip" in frame.columns else None
    skip = pl.repeat(False, len(text), eager=True)
    if own is not None:
        skip = (own.fill_null(False) & (frame["_json"] == "object")).alias("_skip")
    other = frame["_other"] & ~skip
    if other.any():
        some = text.filter(other)
        app_line = some.str.contains(_APP_HINT) & ~some.str.contains(_HTTP_HINT)
        skip = skip.scatter(other.arg_true(), app_line)
    plain = frame["_json"] == "other"
    if plain.any():
        some = text.filter(plain)
        app_line = some.str.contains(r"^\s*$") | some.str.contains(_PLAIN_APP_LINE)
        skip = skip.scatter(plain.arg_true(), app_line)
    kind = pl.col("_json")
    reject = (
        pl.when(pl.col("_skip"))
        .then(None)
        .when(kind == "invalid")
        .then(pl.lit("invalid JSON"))
        .when(kind == "other")
        .then(pl.lit("not a JSON object"))
        .when(pl.col("_other"))
        .then(pl.lit(f"not {'an' if name[0] in 'aeiou' else 'a'} {name} record"))
    )
    frame = frame.with_columns(skip.alias("_skip")).with_columns(reject.alias("_reject"))
    return schema.finish(frame.drop("_json", "_other"))


def record_parser(name: str, build: Build) -> Callable[[pl.Series, ParserState], pl.DataFrame]:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        return parse_records(lines, name, build)

    parse.__name__ = parse.__qualname__ = f"parse_{name}"
    return parse
