"""Parse step for the Common Log Format family: combined, common and vcombined.

lines -> frame of canonical columns (see `ingest.schema`). The fixed CLF formats are parsed by
splitting on quotes and spaces (several times faster in polars than one capturing regex). The
expressions that read a request line, a CLF time or a status live here too, shared with the
nginx `log_format` compiler and the proxy formats.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import polars as pl

from conflictradar.ingest import plans, schema
from conflictradar.ingest.formats import Format, ParseFn, ParserState
from conflictradar.ingest.plans import Plan, record
from conflictradar.ingest.timestamps import parse_clf

LazyParse = Callable[[pl.LazyFrame], pl.LazyFrame]

# Private-use characters that stand in for `\"` and `\\` while a line is split on quotes.
_ESC_QUOTE = "\ue000"
_ESC_BACKSLASH = "\ue001"

_METHOD_RE = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
_ORIGIN_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"
_IPV4_RE = r"^\d{1,3}(?:\.\d{1,3}){3},?$"


def run_query(lines: pl.Series, build: LazyParse) -> pl.DataFrame:
    """Run `build` over a one-column (`line`) frame of the lines.

    A large block runs on the streaming engine, which spreads the string work over all cores
    (measured on polars 2.1: about 2x on 2 cores; slicing by hand and `pl.collect_all` gained
    nothing); a small one as `plans.collect` finds cheapest.
    """
    frame = pl.DataFrame({"line": lines.cast(pl.String)})
    return plans.collect(build(frame.lazy()), frame.height)


def blank(line: pl.Expr) -> pl.Expr:
    """True for empty or whitespace-only lines, which every text format skips (Unicode
    whitespace, as regex `^\\s*$` has it; trimming is ~4x cheaper than that regex)."""
    return line.is_null() | (line.str.strip_chars_start().str.len_bytes() == 0)


def none_if_absent(expr: pl.Expr) -> pl.Expr:
    """`-` or empty -> null; cheaper than `schema.absent_to_null` for fields that use only those."""
    return pl.when(expr.is_in(["-", ""])).then(None).otherwise(expr)


def valid_status(text: pl.Expr) -> pl.Expr:
    """An HTTP status from text; anything outside 100-599 (`-`, `0`, `-1`) is null."""
    status = text.cast(pl.Int16, strict=False)
    return pl.when(status.is_between(100, 599)).then(status)


def with_request(lf: pl.LazyFrame, request: str) -> pl.LazyFrame:
    """Add `method`, `path`, `query` from the request-line column `request` (`GET /a?b=1 HTTP/1.1`).

    A request line whose first word is not a method (`-`, TLS bytes, garbage) gives nulls.
    Staged so each split runs once.
    """
    lf = lf.with_columns(pl.col(request).str.splitn(" ", 3).alias("_rq"))
    method = pl.col("_rq").struct.field("field_0")
    ok = method.str.contains(_METHOD_RE)
    lf = lf.with_columns(
        pl.when(ok).then(method).alias("method"),
        pl.when(ok).then(pl.col("_rq").struct.field("field_1")).alias("_target"),
    )
    return with_target(lf.drop("_rq"), "_target")


def with_target(lf: pl.LazyFrame, target: str) -> pl.LazyFrame:
    """Add `path` and `query` from the request-target column `target`, then drop it.

    Absolute-form targets lose scheme and host; same result as `schema.split_target` for request
    lines at a fraction of its cost.
    """
    lf = lf.with_columns(
        none_if_absent(pl.col(target)).str.replace(_ORIGIN_RE, "").str.splitn("?", 2).alias("_pq")
    )
    path = pl.col("_pq").struct.field("field_0")
    query = pl.col("_pq").struct.field("field_1")
    return lf.with_columns(
        pl.when(path == "").then(pl.lit("/")).otherwise(path).alias("path"),
        pl.when(query == "").then(None).otherwise(query).alias("query"),
    ).drop("_pq", target)


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
        lf = lf.with_columns(
            line.str.splitn('"', 8).alias("_q"), blank(pl.col("line")).alias("_skip")
        )
        lf = lf.select(
            "_skip",
            q.field("field_0").str.splitn(" [", 2).alias("_head"),
            (_unescape(q.field("field_1")) if escaped else q.field("field_1")).alias("_request"),
            q.field("field_2").str.strip_chars().str.splitn(" ", 3).alias("_mid"),
            pl.when(q.field("field_4") == " ").then(q.field("field_5")).alias("_agent"),
            q.field("field_6").alias("_tail6"),
            q.field("field_7").alias("_tail7"),
        )
        lf = with_request(lf, "_request")
        head = pl.col("_head").struct
        lf = lf.with_columns(
            head.field("field_0").str.splitn(" ", 3).alias("_remote"),
            head.field("field_1").alias("_time"),
            head.field("field_0").str.contains(",", literal=True).alias("_chain"),
        )
        remote = pl.col("_remote").struct
        first, second, rest = (remote.field(f"field_{i}") for i in range(3))
        # Two tokens before ident and user: `vhost client` (Apache %v or %v:%p) ...
        lf = lf.with_columns(
            (rest.str.contains(" ", literal=True) & ~pl.col("_chain") & ~first.str.starts_with('"'))
            .fill_null(False)
            .alias("_two")
        )
        two = pl.col("_two")
        if kind == "vcombined":
            vhost = two & (rest.str.count_matches(" ", literal=True) == 1)
        else:
            # ... unless the first is an address: nginx's `$http_x_forwarded_for $remote_addr`.
            candidate = pl.when(two).then(first)
            address = candidate.str.contains(_IPV4_RE) | (
                candidate.str.count_matches(":", literal=True) >= 2
            )
            vhost = two & ~address.fill_null(False)
        lf = lf.with_columns(vhost.alias("_vhost"))
        vhost = pl.col("_vhost")
        time = pl.col("_time")
        ok = pl.col("_mid").is_not_null() & time.str.ends_with("] ")
        if kind == "vcombined":
            ok = ok & vhost
        mid = pl.col("_mid").struct
        columns = [
            parse_clf(time.str.strip_suffix("] ")).alias("ts"),
            pl.when(vhost).then(first).str.replace(r":\d+$", "").alias("host"),
            none_if_absent(
                pl.when(vhost).then(second).otherwise(first.str.strip_chars('",\ufeff'))
            ).alias("client_ip"),
            "method",
            "path",
            "query",
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


@functools.lru_cache(maxsize=16)
def _clf_plan(kind: str, escaped: bool, quoted_chain: bool) -> tuple[Plan, pl.Schema]:
    """The recorded query of one variant and the columns it yields (built once: see plans)."""
    plan = record(_clf_query(kind, escaped, quoted_chain))
    return plan, plan.schema({"line": pl.String()})


def clf_parser(kind: str) -> ParseFn:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        frame = pl.DataFrame({"line": lines.cast(pl.String)})
        # Escaped quotes are rare; only then pay for substituting them before the split.
        escaped, quoted_chain = frame.select(
            pl.col("line").str.contains("\\", literal=True).any().alias("escaped"),
            pl.col("line").str.starts_with('"').any().alias("quoted_chain"),
        ).row(0)
        plan, columns = _clf_plan(kind, bool(escaped), bool(quoted_chain))
        query = schema.finish_lazy(plan.apply(frame.lazy()), columns)
        return plans.collect(query, frame.height)

    return parse


# The reasons `schema.finish` gives: the line had the format's shape but a bad value, so
# another shape should not be tried.
_VALUE_REJECTS = ["no valid timestamp", "no valid status"]


def first_match(parsers: list[ParseFn], reason: str) -> ParseFn:
    """A parser trying each of `parsers` in turn on the lines the earlier ones could not shape.

    Lines none of them can shape are rejected with `reason`.
    """

    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        frame = parsers[0](lines, state)
        for parser in parsers[1:]:
            retry = frame["_reject"].is_not_null() & ~frame["_reject"].is_in(_VALUE_REJECTS)
            if not retry.any():
                break
            index = retry.arg_true()
            again = parser(lines.gather(index), state)
            frame = pl.DataFrame([frame[c].clone().scatter(index, again[c]) for c in frame.columns])
        shapeless = frame["_reject"].is_not_null() & ~frame["_reject"].is_in(_VALUE_REJECTS)
        return frame.with_columns(
            pl.when(shapeless).then(pl.lit(reason)).otherwise(pl.col("_reject")).alias("_reject")
        )

    return parse


FORMATS: list[Format] = [
    Format("vcombined", clf_parser("vcombined"), "Apache combined with a %v or %v:%p prefix"),
    Format("combined", clf_parser("combined"), "nginx/Apache combined, extra fields tolerated"),
    Format("common", clf_parser("common"), "nginx/Apache common log format"),
]
