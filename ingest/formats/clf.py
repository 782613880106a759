"""Parse step for the Common Log Format family: combined, common, vcombined and nginx log_format.

lines -> frame of canonical columns (see `ingest.schema`). The fixed CLF formats are parsed by
splitting on quotes and spaces (several times faster in polars than one capturing regex); formats
built from an nginx `log_format` directive compile to one anchored regex.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ingest import schema
from ingest.formats import Format, ParserState, UnknownFormatError
from ingest.timestamps import parse_clf, parse_epoch, parse_iso

LazyParse = Callable[[pl.LazyFrame], pl.LazyFrame]

# Below this many lines one query is cheaper than slicing and gathering.
_PARALLEL_MIN_ROWS = 100_000

# Private-use characters that stand in for `\"` and `\\` while a line is split on quotes.
_ESC_QUOTE = "\ue000"
_ESC_BACKSLASH = "\ue001"

_METHOD_RE = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
_ORIGIN_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"
_IPV4_RE = r"^\d{1,3}(?:\.\d{1,3}){3},?$"


def collect_in_slices(lines: pl.Series, build: LazyParse) -> pl.DataFrame:
    """Run `build` over a one-column (`line`) frame, in parallel slices when the batch is large.

    A single string expression runs on one core; slicing the rows and collecting the slices
    together uses them all. Row order is kept.
    """
    frame = pl.DataFrame({"line": lines.cast(pl.String)})
    workers = pl.thread_pool_size()
    if frame.height < _PARALLEL_MIN_ROWS or workers < 2:
        return build(frame.lazy()).collect()
    size = math.ceil(frame.height / workers)
    queries = [build(frame.slice(start, size).lazy()) for start in range(0, frame.height, size)]
    return pl.concat(pl.collect_all(queries))


def blank(line: pl.Expr) -> pl.Expr:
    """True for empty or whitespace-only lines, which every text format skips."""
    return line.is_null() | line.str.contains(r"^\s*$")


def none_if_absent(expr: pl.Expr) -> pl.Expr:
    """`-` or empty -> null; cheaper than `schema.absent_to_null` for fields that use only those."""
    return pl.when(expr.is_in(["-", ""])).then(None).otherwise(expr)


def valid_status(text: pl.Expr) -> pl.Expr:
    """An HTTP status from text; anything outside 100-599 (`-`, `0`, `-1`) is null."""
    status = text.cast(pl.Int16, strict=False)
    return pl.when(status.is_between(100, 599)).then(status)


def request_columns(request: pl.Expr) -> list[pl.Expr]:
    """`GET /a?b=1 HTTP/1.1` -> method, path, query. Garbage request lines give nulls."""
    parts = request.str.splitn(" ", 3)
    method = parts.struct.field("field_0")
    ok = method.str.contains(_METHOD_RE)
    target = pl.when(ok).then(parts.struct.field("field_1"))
    return [pl.when(ok).then(method).alias("method"), *target_columns(target)]


def target_columns(target: pl.Expr) -> list[pl.Expr]:
    """Request-target -> path, query; absolute-form targets lose scheme and host.

    Same result as `schema.split_target` for request lines, at a fraction of its cost.
    """
    pq = none_if_absent(target).str.replace(_ORIGIN_RE, "").str.splitn("?", 2)
    path = pq.struct.field("field_0")
    query = pq.struct.field("field_1")
    return [
        pl.when(path == "").then(pl.lit("/")).otherwise(path).alias("path"),
        pl.when(query == "").then(None).otherwise(query).alias("query"),
    ]


def _unescape(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(_ESC_QUOTE, '"', literal=True).str.replace_all(
        _ESC_BACKSLASH, "\\", literal=True
    )


def _clf_query(kind: str, escaped: bool, quoted_chain: bool) -> LazyParse:
    """The lazy query for `combined`, `common` or `vcombined` lines.

    `host ip ident user [time] "request" status bytes "referer" "agent" extra...` is split on
    `"`; the parts before the request carry the client (optionally preceded by a virtual host
    or an X-Forwarded-For chain), the part after it status and bytes.
    """

    def build(lf: pl.LazyFrame) -> pl.LazyFrame:
        line = pl.col("line")
        if escaped:
            line = line.str.replace_all("\\\\", _ESC_BACKSLASH, literal=True).str.replace_all(
                '\\"', _ESC_QUOTE, literal=True
            )
        if quoted_chain:
            # nginx `"$http_x_forwarded_for" $remote_addr - ...`: unquote the leading chain.
            line = line.str.replace(r'^"([^"]*)" ', "$1 ")
        q = pl.col("_q").struct
        lf = lf.with_columns(line.str.splitn('"', 8).alias("_q"), blank(pl.col("line")).alias("_skip"))
        lf = lf.select(
            "_skip",
            q.field("field_0").str.splitn(" [", 2).alias("_head"),
            q.field("field_1").alias("_request"),
            q.field("field_2").str.strip_chars(" ").str.splitn(" ", 3).alias("_mid"),
            pl.when(q.field("field_4") == " ").then(q.field("field_5")).alias("_agent"),
            q.field("field_6").alias("_tail6"),
            q.field("field_7").alias("_tail7"),
        )
        head = pl.col("_head").struct
        lf = lf.with_columns(
            head.field("field_0").str.splitn(" ", 3).alias("_remote"),
            head.field("field_1").alias("_time"),
            head.field("field_0").str.contains(",", literal=True).alias("_chain"),
        )
        remote = pl.col("_remote").struct
        first, second, rest = remote.field("field_0"), remote.field("field_1"), remote.field("field_2")
        # Two tokens before ident and user: `vhost client` (Apache %v / %v:%p), unless the first
        # is an address, which makes it nginx's `$http_x_forwarded_for $remote_addr`.
        two = rest.str.contains(" ", literal=True) & ~pl.col("_chain") & ~first.str.starts_with('"')
        if kind == "vcombined":
            vhost = two & (rest.str.count_matches(" ", literal=True) == 1)
        else:
            address = first.str.contains(_IPV4_RE) | (first.str.count_matches(":", literal=True) >= 2)
            vhost = two & ~address
        time = pl.col("_time")
        ok = pl.col("_mid").is_not_null() & time.str.ends_with("] ")
        if kind == "vcombined":
            ok = ok & vhost
        mid = pl.col("_mid").struct
        request = _unescape(pl.col("_request")) if escaped else pl.col("_request")
        columns = [
            parse_clf(time.str.strip_suffix("] ")).alias("ts"),
            pl.when(vhost).then(first.str.replace(r":\d+$", "")).alias("host"),
            none_if_absent(pl.when(vhost).then(second).otherwise(first.str.strip_chars('",'))).alias(
                "client_ip"
            ),
            *request_columns(request),
            valid_status(mid.field("field_0")).alias("status"),
            mid.field("field_1").cast(pl.Int64, strict=False).alias("bytes"),
            pl.when(pl.col("_skip") | ok)
            .then(None)
            .otherwise(pl.lit(f"not a {kind} line"))
            .alias("_reject"),
            "_skip",
        ]
        if kind != "common":
            agent = _unescape(pl.col("_agent")) if escaped else pl.col("_agent")
            columns.append(none_if_absent(agent).alias("user_agent"))
            columns.append(_trailing_duration().alias("duration_ms"))
        return lf.select(columns)

    return build


def _trailing_duration() -> pl.Expr:
    """Duration from fields after the user agent: Traefik's `... "router" "url" 12ms`, or a
    bare nginx `$request_time` in seconds (always three decimals) right after the agent."""
    traefik = pl.col("_tail7").str.extract(r" (\d+(?:\.\d+)?)ms\s*$", 1).cast(pl.Float64)
    seconds = pl.col("_tail6").str.extract(r"^ (\d+\.\d{3})(?:\s|$)", 1).cast(pl.Float64)
    return pl.coalesce(traefik, seconds * 1000.0)


def _clf_parser(kind: str) -> Callable[[pl.Series, ParserState], pl.DataFrame]:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        # Escaped quotes are rare; only then pay for substituting them before the split.
        escaped = bool(lines.str.contains("\\", literal=True).any())
        quoted_chain = bool(lines.str.starts_with('"').any())
        return schema.finish(collect_in_slices(lines, _clf_query(kind, escaped, quoted_chain)))

    return parse
