"""JSON access logs (parse stage): API Gateway, Kong, Traefik, Caddy, Envoy, ECS, OTel, any JSON.

Each batch of lines is parsed once by DuckDB's JSON reader (`from_json` into a struct of exactly
the keys a format reads), which never raises on a bad line, tolerates a key whose type changes
from line to line (`error` a string here, an object there) and is several times faster than
polars' `json_path_match` (one parse per key) or `json_decode` (raises on the first odd line).
Everything after that is polars expressions over the extracted strings.

Key paths are written `a/b/c` (nesting); an all-digit segment is an array index, and a dot is part
of a key, so `http.request.method` is the dotted key and `http/request/method` the nested one.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable, Sequence

import duckdb
import polars as pl

from ingest import schema
from ingest.formats import Format, ParserState
from ingest.timestamps import parse_clf, parse_epoch, parse_iso

# --- extraction -------------------------------------------------------------------------------

_LOCAL = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    # One in-memory connection per thread: a DuckDB connection must not be shared across threads.
    con: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "con", None)
    if con is None:
        con = duckdb.connect(":memory:")
        _LOCAL.con = con
    return con


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _jsonpath(segments: Sequence[str]) -> str:
    return "$" + "".join(f"[{s}]" if s.isdigit() else '."' + s + '"' for s in segments)


def _sql(query: str, frame: pl.DataFrame) -> pl.DataFrame:
    con = _connection()
    con.register("src", frame.to_arrow())
    try:
        result = pl.from_arrow(con.sql(query).to_arrow_table())
    finally:
        con.unregister("src")
    assert isinstance(result, pl.DataFrame)
    return result


def _plan(paths: Sequence[str]) -> tuple[str, list[str]]:
    """A `from_json` structure covering `paths`, and one SQL expression per path.

    Each path is read through its shortest requested prefix that stops before any array index
    (its anchor), declared VARCHAR so it comes back as a string or as JSON text; whatever lies
    below an anchor (`error/message` under `error`, `User-Agent/0`) is read from that text. A key
    differing only in case from a sibling cannot share a DuckDB struct: it is read from the line.
    """
    split = [p.split("/") for p in paths]
    heads = {tuple(s[: next((i for i, x in enumerate(s) if x.isdigit()), len(s))]) for s in split}
    structure: dict = {}
    exprs = []
    for segments in split:
        anchor = next(
            (
                tuple(segments[:n])
                for n in range(1, len(segments) + 1)
                if tuple(segments[:n]) in heads
            ),
            (),
        )
        node, access = structure, "s"
        for depth, key in enumerate(anchor):
            clash = next((k for k in node if k.lower() == key.lower() and k != key), None)
            if clash is not None:
                anchor = ()
                break
            if depth == len(anchor) - 1:
                node.setdefault(key, "VARCHAR")
            else:
                node = node.setdefault(key, {})
            access = f"struct_extract({access}, {_sql_text(key)})"
        if not anchor:
            exprs.append(f"json_extract_string(line, {_sql_text(_jsonpath(segments))})")
            continue
        tail = segments[len(anchor) :]
        if tail:
            path = _sql_text(_jsonpath(tail))
            access = (
                f"CASE WHEN json_valid({access}) THEN json_extract_string({access}, {path}) END"
            )
        exprs.append(access)
    return json.dumps(structure), exprs


def _present_keys(text: pl.Series, keys: Sequence[str]) -> set[str]:
    """Which of `keys` occur as `"key"` anywhere in the batch (a superset of the top-level keys).

    Reading a key costs DuckDB time even when no line has it; a log uses a handful of the many
    aliases a format knows. A strided sample names the common keys cheaply, one Aho-Corasick pass
    over the batch proves the others absent or finds the few lines that hold them.
    """
    quoted = {f'"{key}"': key for key in keys}
    step = max(1, len(text) // 512)
    found = set(text.gather_every(step).str.extract_many(list(quoted)).explode().drop_nulls())
    rest = [q for q in quoted if q not in found]
    if rest:
        holders = text.filter(text.str.contains_any(rest))
        if len(holders):
            found |= set(holders.str.extract_many(rest).explode().drop_nulls())
    return {quoted[q] for q in found}


def _extract(text: pl.Series, paths: Sequence[str]) -> pl.DataFrame:
    """Columns for the `paths` whose first key occurs in the batch, plus `_json`."""
    candidate = text.str.contains(r"^[\s\ufeff]*\{")
    src = pl.DataFrame({"line": text}).select(pl.when(candidate).then(pl.col("line")).alias("line"))
    present = _present_keys(text, sorted({p.split("/")[0] for p in paths}))
    paths = [p for p in dict.fromkeys(paths) if p.split("/")[0] in present]
    structure, exprs = _plan(paths)
    picks = "".join(f", {e} AS c{i}" for i, e in enumerate(exprs))
    parsed = f"try(from_json(line, {_sql_text(structure)}))" if paths else "json('{}')"
    query = (
        f"SELECT s IS NOT NULL AS ok{picks} FROM (SELECT line, "
        f"CASE WHEN json_valid(line) THEN {parsed} END AS s FROM src)"
    )
    got = _sql(query, src)
    if len(got) != len(text):  # DuckDB keeps insertion order for a plain projection
        raise RuntimeError("JSON extraction changed the row count")
    kind = (
        pl.when(~candidate)
        .then(pl.lit("other"))
        .when(pl.col("ok"))
        .then(pl.lit("object"))
        .otherwise(pl.lit("invalid"))
    )
    return got.select(
        *[pl.col(f"c{i}").cast(pl.String).alias(p) for i, p in enumerate(paths)],
        kind.alias("_json"),
    )


def extract_json(lines: pl.Series, paths: Sequence[str]) -> pl.DataFrame:
    """The value at each key path of each line: one String column per path, plus `_json`.

    A string comes back unquoted, a number or boolean as its JSON text, an object or array as JSON
    text, JSON null or a missing key as null. `_json` is "object" for a JSON object, "invalid" for
    a line that starts like one but does not parse, "other" for anything else (arrays, scalars,
    plain text). Same length and order as `lines`.
    """
    got = _extract(lines.cast(pl.String).fill_null(""), paths)
    return got.select(
        *[pl.col(p) if p in got.columns else pl.lit(None, pl.String).alias(p) for p in paths],
        pl.col("_json"),
    )


# --- expression helpers -----------------------------------------------------------------------


class _Keys:
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


def _keys(words: str) -> tuple[str, ...]:
    return tuple(words.split())


def _int(e: pl.Expr) -> pl.Expr:
    """409, "409", " 409", 409.0 -> 409."""
    plain = e.cast(pl.Int64, strict=False)
    odd = pl.when(plain.is_null()).then(e)  # only the odd spellings pay for the regex
    return pl.coalesce(
        plain, odd.str.extract(r"^\s*(-?\d+)(?:\.0*)?\s*$", 1).cast(pl.Int64, strict=False)
    )


def _num(e: pl.Expr) -> pl.Expr:
    return e.str.strip_chars().cast(pl.Float64, strict=False)


def _scaled(factor: float) -> Callable[[pl.Expr], pl.Expr]:
    def convert(e: pl.Expr) -> pl.Expr:
        return _num(e) * factor

    return convert


def _http_status(e: pl.Expr) -> pl.Expr:
    code = _int(e)
    return pl.when(code.is_between(100, 599)).then(code)


def _upstream_status(e: pl.Expr) -> pl.Expr:
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


def _go_duration_ms(e: pl.Expr) -> pl.Expr:
    """`1.5ms`, `2s`, `350µs` (Go's time.Duration text) -> milliseconds."""
    parts = e.str.extract_groups(r"^\s*(\d*\.?\d+)\s*(ns|us|µs|μs|ms|s|m|h)\s*$")
    value = parts.struct.field("1").cast(pl.Float64, strict=False)
    factor = parts.struct.field("2").replace_strict(
        _GO_UNITS, default=None, return_dtype=pl.Float64
    )
    return value * factor


def _guess_duration_ms(e: pl.Expr) -> pl.Expr:
    """A duration whose key names no unit: a unit suffix wins, else a fraction means seconds
    (`0.012`) and an integer milliseconds (`12`)."""
    integer = e.str.contains(r"^\s*\d+\s*$")
    return pl.coalesce(_go_duration_ms(e), pl.when(integer).then(_num(e)).otherwise(_num(e) * 1e3))


def _address(e: pl.Expr) -> pl.Expr:
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


def _scalar_text(e: pl.Expr) -> pl.Expr:
    """Drop values that are not text: objects, arrays, booleans, bare numbers."""
    not_text = e.str.contains(r"^\s*(?:\{.*\}|\[.*\]|true|false|-?[\d.]+)\s*$")
    return pl.when(not_text).then(None).otherwise(e)


def _ts(e: pl.Expr) -> pl.Expr:
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
ERROR_KEYS = _keys(
    "error/message error.message errorMessage error_message errorMsg error err reason"
)
GENERIC_KEYS = _keys("message msg")


def _message(
    k: _Keys, errors: Sequence[str], generic: Sequence[str], method: pl.Expr, path: pl.Expr
) -> pl.Expr:
    """Error/reason text. A generic message that merely restates the request (`GET /x ...`, the
    raw access line some shippers keep in `message`) is not a reason and is dropped."""
    error = pl.coalesce([_scalar_text(k.col(p)) for p in errors])
    if not generic:
        return error
    text = pl.coalesce([_scalar_text(k.col(p)) for p in generic])
    restates = text.str.contains(pl.concat_str([method, pl.lit(" "), path]), literal=True)
    return pl.coalesce(error, pl.when(restates.fill_null(False)).then(None).otherwise(text))


def _target(
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

Build = Callable[[_Keys], tuple[dict[str, pl.Expr], pl.Expr]]


def _run(
    lines: pl.Series,
    name: str,
    build: Build,
    augment: Callable[[pl.DataFrame, pl.Series], pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Extract the keys `build` reads, evaluate its columns, set `_reject` / `_skip`."""
    wanted = _Keys()
    build(wanted)
    text = lines.cast(pl.String).fill_null("")
    values = _extract(text, list(wanted.used))
    read = [c for c in values.columns if c != "_json"]
    values = values.with_columns(
        pl.when(pl.col(p).is_in(schema.ABSENT)).then(None).otherwise(pl.col(p)).alias(p)
        for p in read
    )
    k = _Keys(set(read))
    columns, is_record = build(k)
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


# --- formats ----------------------------------------------------------------------------------


def _apigw(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    route_key = k.col("routeKey")
    key_method = route_key.str.extract(r"^([A-Z]+) ", 1)
    method = pl.coalesce(k.col("httpMethod"), pl.when(key_method != "ANY").then(key_method))
    path = k.col("path")
    errors = _keys(
        "errorMessage error/message error.message error/messageString error.messageString "
        "integrationErrorMessage integration/error integration.error error_message errorMsg err "
        "reason"
    )
    columns = {
        # requestTimeEpoch has milliseconds; requestTime is CLF with seconds only.
        "ts": pl.coalesce(_ts(k.col("requestTimeEpoch")), _ts(k.col("requestTime"))),
        "client_ip": _address(k.first("ip", "sourceIp", "identity/sourceIp", "identity.sourceIp")),
        "user_agent": k.first("userAgent", "identity/userAgent", "identity.userAgent"),
        "method": method,
        **_target(path),
        # `POST /orders/{id}` -> `/orders/{id}`; `$default` is no template.
        "route": pl.coalesce(
            route_key.str.extract(r"^(?:[A-Z]+ )?(/\S*)$", 1), k.col("resourcePath")
        ),
        "host": k.col("domainName"),
        "status": _int(k.col("status")),
        "upstream_status": _upstream_status(
            k.first("integrationStatus", "integration/status", "integration.status")
        ),
        "bytes": _int(k.col("responseLength")),
        "duration_ms": _num(
            k.first(
                *_keys("responseLatency integrationLatency integration/latency integration.latency")
            )
        ),
        "request_id": k.first("requestId", "extendedRequestId"),
        "message": _message(k, errors, GENERIC_KEYS, method, path),
    }
    return columns, k.present("requestId") & k.present("httpMethod", "routeKey", "resourcePath")


def _kong(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("request/method")
    target = _target(k.first("request/uri", "request/url"))
    # Kong's plain `paths` are prefixes, not templates; a regex path with named groups is one:
    # `~/orders/(?<id>\d+)$` -> `/orders/{id}`.
    route_path = k.col("route/paths/0")
    template = (
        route_path.str.strip_prefix("~")
        .str.replace_all(r"\(\?P?<(\w+)>[^()]*\)", "{${1}}")
        .str.strip_prefix("^")
        .str.strip_suffix("$")
    )
    regex_left = template.str.contains(r"[()\[\]\\*+?|^$]")
    status = _int(k.col("response/status"))
    columns = {
        "ts": parse_epoch(k.col("started_at")),
        "client_ip": _address(k.col("client_ip")),
        "user_agent": k.first("request/headers/user-agent/0", "request/headers/user-agent"),
        "method": method,
        **target,
        "route": pl.when(route_path.str.starts_with("~") & ~regex_left).then(template),
        "host": k.first("request/headers/host/0", "request/headers/host"),
        "status": status,
        # Kong 3 says where the response came from; "upstream" means the service answered.
        "upstream_status": pl.coalesce(
            _upstream_status(k.col("upstream_status")),
            pl.when(k.col("source") == "upstream").then(status),
        ),
        "bytes": _int(k.col("response/size")),
        "duration_ms": _num(k.col("latencies/request")),
        "request_id": k.first(
            *_keys(
                "request/id request/headers/x-kong-request-id response/headers/x-kong-request-id "
                "request/headers/kong-request-id response/headers/kong-request-id"
            )
        ),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("request/method") & k.present("response/status")


def _traefik(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("RequestMethod")
    target = _target(k.col("RequestPath"))
    columns = {
        # StartUTC is the request's start with nanoseconds; `time` is when the line was written.
        "ts": parse_iso(k.first("StartUTC", "StartLocal", "time")),
        "client_ip": _address(k.first("ClientHost", "ClientAddr")),
        "user_agent": k.col("request_User-Agent"),
        "method": method,
        **target,
        "host": k.first("RequestHost", "RequestAddr"),
        "status": _int(k.col("DownstreamStatus")),
        "upstream_status": _upstream_status(k.col("OriginStatus")),
        "bytes": _int(k.first("DownstreamContentSize", "OriginContentSize")),
        "duration_ms": _num(k.first("Duration", "OriginDuration")) / 1e6,
        "request_id": k.first("request_X-Request-Id", "request_X-Correlation-Id"),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("RequestMethod", "DownstreamStatus")


def _caddy(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    duration = k.col("duration")
    columns = {
        "ts": _ts(k.col("ts")),
        "client_ip": _address(
            k.first("request/client_ip", "request/remote_ip", "request/remote_addr")
        ),
        "user_agent": k.first("request/headers/User-Agent/0", "request/headers/User-Agent"),
        "method": k.col("request/method"),
        **_target(k.col("request/uri")),
        "host": k.col("request/host"),
        "status": _int(k.col("status")),
        "bytes": _int(k.col("size")),
        "duration_ms": pl.coalesce(_go_duration_ms(duration), _num(duration) * 1e3),
        "request_id": k.col("request/headers/X-Request-Id/0"),
        # `msg` is always "handled request": only an error field is a reason.
        "message": pl.coalesce([_scalar_text(k.col(p)) for p in ERROR_KEYS]),
    }
    # Only http.log.access lines are requests; every other logger (admin, tls, http.log.error,
    # which repeats the request of a failed access line) is caddy talking about itself.
    logger = k.col("logger")
    columns["_skip"] = logger.is_not_null() & ~logger.str.starts_with("http.log.access")
    access = pl.coalesce(
        logger.str.starts_with("http.log.access"), k.col("msg") == "handled request"
    )
    return columns, access & k.present("request/method") & k.present("status")


def _envoy(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.first("method", ":method", "request_method")
    target = _target(
        k.first(
            *_keys(
                "x-envoy-origin-path x_envoy_origin_path x-envoy-original-path "
                "x_envoy_original_path path :path"
            )
        )
    )
    status = _int(k.col("response_code"))
    client = k.first(
        *_keys(
            "x_forwarded_for x-forwarded-for downstream_remote_address "
            "downstream_direct_remote_address"
        )
    )
    columns = {
        "ts": _ts(k.first("start_time", "timestamp", "@timestamp")),
        "client_ip": _address(client),
        "user_agent": k.first("user_agent", "user-agent"),
        "method": method,
        **target,
        "host": k.first("authority", ":authority", "host"),
        "status": status,
        # "via_upstream": the service's own response went through unchanged.
        "upstream_status": pl.coalesce(
            _upstream_status(k.first("upstream_response_code", "upstream_status")),
            pl.when(k.col("response_code_details") == "via_upstream").then(status),
        ),
        "bytes": _int(k.col("bytes_sent")),
        "duration_ms": _num(k.col("duration")),
        "request_id": k.first("request_id", "x-request-id", "x_request_id"),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("response_code")


def _ecs_paths(dotted: str) -> tuple[str, ...]:
    """Every spelling of an ECS field: nested, dotted, or a mix such as `http.request/method`."""
    parts = dotted.split(".")
    return tuple(
        parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))
        for seps in itertools.product("/.", repeat=len(parts) - 1)
    )


def _ecs(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    def field(*names: str) -> pl.Expr:
        return k.first(*[p for n in names for p in _ecs_paths(n)])

    method = field("http.request.method")
    target = _target(field("url.original", "url.full"), field("url.path"), field("url.query"))
    errors = (*_ecs_paths("error.message"), *ERROR_KEYS[2:])
    columns = {
        "ts": _ts(k.first("@timestamp", "timestamp")),
        "client_ip": _address(field("source.ip", "client.ip", "source.address", "client.address")),
        "user_agent": field("user_agent.original"),
        "method": method,
        **target,
        "route": field("http.route"),
        "host": field("url.domain", "host.name"),
        "status": _int(field("http.response.status_code")),
        "bytes": _int(field("http.response.body.bytes", "http.response.bytes")),
        "duration_ms": _num(field("event.duration")) / 1e6,
        "request_id": field("http.request.id", "trace.id", "transaction.id"),
        "message": _message(k, errors, GENERIC_KEYS, method, target["path"]),
    }
    http = (*_ecs_paths("http.request.method"), *_ecs_paths("http.response.status_code"))
    return columns, k.present(*http)


# OTel attribute names by field, current names first, then the pre-1.21 ones.
_OTEL = {
    "method": _keys("http.request.method http.method"),
    "path": _keys("url.path"),
    "query": _keys("url.query"),
    "target": _keys("http.target url.full http.url"),
    "route": _keys("http.route"),
    "status": _keys("http.response.status_code http.status_code"),
    "client": _keys(
        "client.address http.client_ip net.peer.ip net.sock.peer.addr network.peer.address"
    ),
    "user_agent": _keys("user_agent.original http.user_agent"),
    "host": _keys("server.address http.host net.host.name"),
    "bytes": _keys("http.response.body.size http.response_content_length"),
    "request_id": _keys("http.request.header.x-request-id"),
    "error": _keys("error.message exception.message"),
}


def _otel(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    def attr(field: str) -> pl.Expr:
        # The flat-map form is read here; `_otel_list` fills `_attr:` columns from the list form.
        names = _OTEL[field]
        return pl.coalesce(
            *[k.col(f"attributes/{n}") for n in names], *[pl.col(f"_attr:{n}") for n in names]
        )

    method = attr("method")
    target = _target(attr("target"), attr("path"), attr("query"))
    start = _int(k.col("startTimeUnixNano"))
    end = _int(k.col("endTimeUnixNano"))
    body = _scalar_text(k.first("body/stringValue", "body"))
    times = _keys("timeUnixNano observedTimeUnixNano startTimeUnixNano timestamp time")
    columns = {
        "ts": k.each(times, _ts),
        "client_ip": _address(attr("client")),
        "user_agent": attr("user_agent"),
        "method": method,
        **target,
        "route": attr("route"),
        "host": attr("host"),
        "status": _int(attr("status")),
        "bytes": _int(attr("bytes")),
        "duration_ms": pl.when(end >= start).then((end - start) / 1e6),
        "request_id": pl.coalesce(attr("request_id"), k.first("traceId", "trace_id")),
        "message": pl.coalesce(
            _scalar_text(attr("error")),
            pl.when(body.str.contains(pl.concat_str([method, pl.lit(" ")]), literal=True))
            .then(None)
            .otherwise(body),
        ),
    }
    return columns, attr("method").is_not_null() | attr("status").is_not_null()


def _otel_list(values: pl.DataFrame, lines: pl.Series) -> pl.DataFrame:
    """Attributes in OTLP's list form, `[{"key": k, "value": {"stringValue": v}}]`, by name."""
    names = sorted({n for group in _OTEL.values() for n in group})
    flat = pl.any_horizontal(
        pl.lit(False),
        *[pl.col(f"attributes/{n}").is_not_null() for n in names if f"attributes/{n}" in values],
    )
    listed = values.select((pl.col("_json") == "object") & ~flat).to_series()
    listed = listed & lines.str.contains(r'"attributes"\s*:\s*\[')
    empty = [pl.lit(None, pl.String).alias(f"_attr:{n}") for n in names]
    if not listed.any():
        return values.with_columns(empty)
    value = " ".join(
        f"json_extract_string(x.value, '$.{kind}'),"
        for kind in ("stringValue", "intValue", "doubleValue", "boolValue")
    )
    picks = ", ".join(
        f"list_filter(kv, lambda x: x.k = {_sql_text(n)})[1].v AS c{i}" for i, n in enumerate(names)
    )
    query = (
        f"SELECT {picks} FROM (SELECT list_transform(try(from_json(json_extract(line, "
        '\'$.attributes\'), \'[{"key":"VARCHAR","value":"JSON"}]\')), lambda x: {\'k\': x.key, '
        f"'v': coalesce({value} json_extract_string(x.value, '$.arrayValue.values[0].stringValue'"
        "))}) AS kv FROM src)"
    )
    got = _sql(query, pl.DataFrame({"line": lines.filter(listed)}))
    at = listed.arg_true()
    out = []
    for i, n in enumerate(names):
        col = pl.repeat(None, len(values), dtype=pl.String, eager=True).alias(f"_attr:{n}")
        found = got[f"c{i}"].cast(pl.String)
        out.append(col.scatter(at, found.set(found.is_in(schema.ABSENT), None)))
    return values.with_columns(out)


def _json(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    request = k.first("request", "request_line", "requestLine")
    line = request.str.extract_groups(r"^([A-Z][A-Z0-9_-]*) (\S+)(?: HTTP/[0-9.]+)?$")
    method = pl.coalesce(
        k.first(
            *_keys(
                "method request_method requestMethod http_method httpMethod verb http/method "
                "http.method"
            )
        ),
        line.struct.field("1"),
    )
    raw_target = pl.coalesce(
        k.first(
            *_keys(
                "request_uri requestUri uri path url request_path requestPath url_path http/url "
                "http.url http/path"
            )
        ),
        line.struct.field("2"),
        pl.when(request.str.contains(r"^(?:/|https?://)")).then(request),
    )
    query = k.first(*_keys("query query_string querystring args request_query url_query"))
    target = _target(raw_target, None, query)
    status = k.each(
        _keys(
            "status status_code statusCode response_code responseCode http_status httpStatus "
            "response_status responseStatus http/status_code http.status_code http/status"
        ),
        _http_status,
    )
    # `code` and `response` are too common in application logs to mean a status on their own.
    weak = k.each(("code", "response"), _http_status)
    status = pl.coalesce(
        status, pl.when(method.is_not_null() | raw_target.is_not_null()).then(weak)
    )
    units = (
        (
            "duration_ms durationMs latency_ms latencyMs elapsed_ms elapsedMs response_time_ms "
            "responseTimeMs request_time_ms took_ms time_ms",
            1.0,
        ),
        (
            "request_time duration_s duration_sec duration_seconds latency_s latency_seconds "
            "response_time_s elapsed_s",
            1e3,
        ),
        ("duration_us duration_micros latency_us elapsed_us", 1e-3),
        ("duration_ns duration_nanos latency_ns elapsed_ns", 1e-6),
    )
    duration = pl.coalesce(
        *[k.each(_keys(words), _scaled(factor)) for words, factor in units],
        k.each(
            _keys("duration latency elapsed response_time responseTime took time_taken"),
            _guess_duration_ms,
        ),
    )
    times = _keys(
        "time timestamp @timestamp ts date datetime time_iso8601 time_local timeMillis msec "
        "start_time created_at event_datetime logged_at"
    )
    clients = _keys(
        "remote_addr client_ip clientIp clientip ip remote_ip remoteIp remote_address client_addr "
        "client_address client src_ip source_ip network/client/ip network.client.ip "
        "x_forwarded_for http_x_forwarded_for xff"
    )
    agents = _keys(
        "user_agent http_user_agent userAgent ua agent user-agent http/useragent http.useragent "
        "http/user_agent"
    )
    request_ids = _keys(
        "request_id requestId req_id reqId x_request_id http_x_request_id x-request-id "
        "request-id correlation_id trace_id traceId"
    )
    sizes = _keys(
        "bytes body_bytes_sent bytes_sent size response_size responseSize response_bytes "
        "resp_bytes bytes_out response_length responseLength"
    )
    columns = {
        "ts": k.each(times, _ts),
        "client_ip": _address(k.first(*clients)),
        "user_agent": k.first(*agents),
        "method": method,
        **target,
        "route": k.first("route", "http_route", "http.route", "route_template"),
        "host": k.first(*_keys("host http_host server_name vhost domain authority")),
        "status": status,
        "upstream_status": _upstream_status(
            k.first(*_keys("upstream_status upstreamStatus upstream_response_code upstream_code"))
        ),
        "bytes": k.each(sizes, _int),
        "duration_ms": duration,
        "request_id": k.first(*request_ids),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    # A status alone (an app log's `"status": 200`) is no request: it needs a method or a target.
    return columns, method.is_not_null() | (status.is_not_null() & raw_target.is_not_null())


def _parser(name: str, build: Build) -> Callable[[pl.Series, ParserState], pl.DataFrame]:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        return _run(lines, name, build)

    parse.__name__ = parse.__qualname__ = f"parse_{name}"
    return parse


parse_apigw = _parser("apigw", _apigw)
parse_kong = _parser("kong", _kong)
parse_traefik = _parser("traefik", _traefik)
parse_caddy = _parser("caddy", _caddy)
parse_envoy_json = _parser("envoy", _envoy)
parse_ecs = _parser("ecs", _ecs)
parse_json = _parser("json", _json)


def parse_otel(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    return _run(lines, "otel", _otel, augment=_otel_list)


def parse_envoy(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    """Envoy's JSON access log and its default text format, in any mix, row-aligned."""
    is_json = lines.cast(pl.String).fill_null("").str.contains(r"^[\s\ufeff]*\{")
    if is_json.all():
        return parse_envoy_json(lines, state)
    rows = pl.int_range(0, len(lines), dtype=pl.Int64, eager=True)
    # Ambassador/Emissary put `ACCESS ` before envoy's text line.
    text_lines = lines.filter(~is_json).str.replace(r"^ACCESS (\[)", "${1}")
    try:
        from ingest.formats.proxies import parse_envoy_text
    except ImportError:
        reason = pl.repeat("not an envoy JSON line", len(text_lines), eager=True, dtype=pl.String)
        text = schema.finish(pl.DataFrame({"_reject": reason}))
    else:
        text = parse_envoy_text(text_lines, state)
    parts = [text.with_columns(rows.filter(~is_json).alias("_row"))]
    if is_json.any():
        parsed = parse_envoy_json(lines.filter(is_json), state)
        parts.append(parsed.with_columns(rows.filter(is_json).alias("_row")))
    return pl.concat(parts, how="vertical_relaxed").sort("_row").drop("_row")


FORMATS: list[Format] = [
    Format("apigw", parse_apigw, "AWS API Gateway JSON access log (requestId, httpMethod, ...)"),
    Format("kong", parse_kong, "Kong file-log plugin JSON"),
    Format("traefik", parse_traefik, "Traefik JSON access log"),
    Format("caddy", parse_caddy, "Caddy JSON access log (http.log.access)"),
    Format("envoy", parse_envoy, "Envoy access log: JSON keys or the default text format"),
    Format("ecs", parse_ecs, "Elastic Common Schema JSON, nested or dotted keys"),
    Format("otel", parse_otel, "OpenTelemetry HTTP semantic conventions (log records or spans)"),
    Format("json", parse_json, "any JSON lines with common key names"),
]
