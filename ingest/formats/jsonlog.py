"""JSON access logs (parse stage): API Gateway, Kong, Traefik, Caddy, Envoy, ECS, OTel, any JSON.

Every line is parsed once by DuckDB's JSON reader (`json_extract_string` with the list of key
paths a format reads), which never raises on a bad line, tolerates a key whose type varies from
line to line (`error` as a string here, an object there) and is several times faster than polars'
`json_path_match` (one parse per key) or `json_decode` (raises on the first odd line). Everything
after that is polars expressions over the extracted strings.

Key paths are written `a/b/c` (nesting), an all-digit segment is an array index and a dot is part
of a key, so `http.request.method` is the dotted key and `http/request/method` the nested one.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence

import duckdb
import polars as pl

from ingest import schema
from ingest.formats import Format, ParserState
from ingest.timestamps import parse_any, parse_clf, parse_epoch, parse_iso

# --- extraction -------------------------------------------------------------------------------

_LOCAL = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    # One in-memory connection per thread: a DuckDB connection must not be shared across threads.
    con: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "con", None)
    if con is None:
        con = duckdb.connect(":memory:")
        _LOCAL.con = con
    return con


def _jsonpath(path: str) -> str:
    parts = [f"[{seg}]" if seg.isdigit() else '."' + seg + '"' for seg in path.split("/")]
    return "$" + "".join(parts)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql(query: str, frame: pl.DataFrame) -> pl.DataFrame:
    con = _connection()
    con.register("src", frame.to_arrow())
    try:
        result = pl.from_arrow(con.sql(query).to_arrow_table())
    finally:
        con.unregister("src")
    assert isinstance(result, pl.DataFrame)
    return result


def extract_json(lines: pl.Series, paths: Sequence[str]) -> pl.DataFrame:
    """The value at each key path of each line: one String column per path, plus `_json`.

    A string comes back unquoted, a number or boolean as its JSON text, an object or array as JSON
    text, JSON null or a missing key as null. `_json` is "object" for a JSON object, "invalid" for
    a line that starts like one but does not parse, "other" for anything else (arrays, scalars,
    plain text). Same length and order as `lines`.
    """
    paths = list(dict.fromkeys(paths))
    text = lines.cast(pl.String).fill_null("").rename("line")
    candidate = text.str.strip_chars_start(" \t\ufeff").str.starts_with("{")
    if len(text) == 0:
        return pl.DataFrame(schema={**dict.fromkeys(paths, pl.String()), "_json": pl.String()})
    src = pl.DataFrame({"line": pl.select(pl.when(candidate).then(text)).to_series()})
    listed = "[" + ", ".join(_sql_text(_jsonpath(p)) for p in paths) + "]"
    picks = ", ".join(f"v[{i + 1}] AS c{i}" for i in range(len(paths)))
    query = (
        f"SELECT v IS NOT NULL AS ok{', ' + picks if picks else ''} FROM (SELECT "
        f"try(CASE WHEN json_valid(line) THEN json_extract_string(line, {listed}) END) AS v "
        "FROM src)"
    )
    got = _sql(query, src)
    if len(got) != len(text):  # DuckDB keeps insertion order for a plain projection
        raise RuntimeError("JSON extraction changed the row count")
    kind = (
        pl.when(~candidate)
        .then(pl.lit("other"))
        .when(got["ok"])
        .then(pl.lit("object"))
        .otherwise(pl.lit("invalid"))
    )
    return got.select(
        *[pl.col(f"c{i}").cast(pl.String).alias(p) for i, p in enumerate(paths)],
        pl.select(kind).to_series().alias("_json"),
    )


# --- expression helpers -----------------------------------------------------------------------


class _Keys:
    """Hands out expressions for key paths and remembers which paths a format reads."""

    def __init__(self) -> None:
        self.used: dict[str, None] = {}

    def col(self, path: str) -> pl.Expr:
        self.used[path] = None
        return pl.col(path)

    def first(self, *paths: str) -> pl.Expr:
        """The first of `paths` that holds a value ("-" and empty mean absent)."""
        return pl.coalesce([self.col(p) for p in paths])

    def each(self, paths: Iterable[str], convert: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
        """The first of `paths` whose value converts (a bad `time` does not hide `timestamp`)."""
        return pl.coalesce([convert(self.col(p)) for p in paths])

    def present(self, *paths: str) -> pl.Expr:
        return pl.any_horizontal([self.col(p).is_not_null() for p in paths])


def _int(e: pl.Expr) -> pl.Expr:
    """409, "409", 409.0 -> 409."""
    return e.str.extract(r"^\s*(-?\d+)(?:\.0*)?\s*$", 1).cast(pl.Int64, strict=False)


def _num(e: pl.Expr) -> pl.Expr:
    return e.str.strip_chars().cast(pl.Float64, strict=False)


def _http_status(e: pl.Expr) -> pl.Expr:
    code = _int(e)
    return pl.when(code.is_between(100, 599)).then(code)


def _upstream_status(e: pl.Expr) -> pl.Expr:
    """The final code of `502, 200` or `502 : 200` (retries); 0 means no upstream answered."""
    code = e.str.extract(r"(\d{3})\D*$", 1).cast(pl.Int64, strict=False)
    return pl.when(code > 0).then(code)


_GO_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _go_duration_ms(e: pl.Expr) -> pl.Expr:
    """`1.5ms`, `2s`, `350µs` (Go's time.Duration text) -> milliseconds."""
    parts = e.str.extract_groups(r"^\s*(\d*\.?\d+)\s*(ns|us|µs|μs|ms|s|m|h)\s*$")
    value = parts.struct.field("1").cast(pl.Float64, strict=False)
    factor = parts.struct.field("2").replace_strict(_GO_UNITS, default=None, return_dtype=pl.Float64)
    return value * factor


def _guess_duration_ms(e: pl.Expr) -> pl.Expr:
    """A duration whose key names no unit: a unit suffix wins, else a fraction means seconds
    (`0.012`), an integer milliseconds (`12`)."""
    integer = e.str.contains(r"^\s*\d+\s*$")
    return pl.coalesce(_go_duration_ms(e), pl.when(integer).then(_num(e)).otherwise(_num(e) * 1e3))


def _address(e: pl.Expr) -> pl.Expr:
    """First address of an X-Forwarded-For style list, without port or IPv6 brackets."""
    first = e.str.extract(r"^\s*([^,\s]+)", 1)
    return pl.coalesce(
        first.str.extract(r"^\[([^\]]+)\](?::\d+)?$", 1),
        first.str.extract(r"^([^:\[\]]+):\d+$", 1),
        first,
    )


def _scalar_text(e: pl.Expr) -> pl.Expr:
    """Drop values that are not text: objects, arrays, booleans, bare numbers."""
    not_text = e.str.contains(r"^\s*(?:\{.*\}|\[.*\]|true|false|-?[\d.]+)\s*$")
    return pl.when(not_text).then(None).otherwise(e)


def _ts(e: pl.Expr) -> pl.Expr:
    """Timestamp in any spelling; epoch zero (OTLP's "unset") is absent."""
    return pl.when(e.str.contains(r"^\s*0+\s*$")).then(None).otherwise(parse_any(e))


# Error-specific keys win over a generic log message (SPEC section 3).
ERROR_KEYS = (
    "error/message",
    "error.message",
    "errorMessage",
    "error_message",
    "errorMsg",
    "error",
    "err",
    "reason",
)
GENERIC_KEYS = ("message", "msg")


def _message(
    k: _Keys, errors: Sequence[str], generic: Sequence[str], method: pl.Expr, path: pl.Expr
) -> pl.Expr:
    """Error/reason text. A generic message that merely restates the request (`GET /x ...`, the
    raw access line some shippers keep in `message`) is not a reason and is dropped."""
    error = pl.coalesce([_scalar_text(k.col(p)) for p in errors]) if errors else None
    if not generic:
        return error if error is not None else pl.lit(None, pl.String)
    text = pl.coalesce([_scalar_text(k.col(p)) for p in generic])
    restates = text.str.contains(pl.concat_str([method, pl.lit(" "), path]), literal=True)
    text = pl.when(restates.fill_null(False)).then(None).otherwise(text)
    return text if error is None else pl.coalesce(error, text)


def _target(target: pl.Expr, path: pl.Expr | None = None, query: pl.Expr | None = None) -> dict[str, pl.Expr]:
    """`path` and `query` columns from a raw request-target, preferring separate fields."""
    split_path, split_query = schema.split_target(target)
    return {
        "path": split_path if path is None else pl.coalesce(path.str.replace(r"[?#].*$", ""), split_path),
        "query": split_query if query is None else pl.coalesce(query, split_query),
    }


# Keys that mark an application log line (start-up, TLS, ...): skipped when nothing HTTP is there.
_APP_KEYS = ("level", "msg", "message", "severity", "log.level", "log/level", "severityText", "logger")
_HTTP_HINT = (
    r'"(?:[Ss]tatus|status_?[Cc]ode|[Rr]esponse_?[Cc]ode|[Mm]ethod|request_?[Mm]ethod|http[_.]?[Mm]ethod'
    r'|httpMethod|http\.request\.method|http\.response\.status_code|DownstreamStatus|RequestMethod)"\s*:'
)

Build = Callable[[_Keys], tuple[dict[str, pl.Expr], pl.Expr]]


def _run(
    lines: pl.Series,
    name: str,
    build: Build,
    augment: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Extract the keys `build` reads, evaluate its columns, set `_reject` / `_skip`."""
    k = _Keys()
    columns, is_record = build(k)
    app = k.present(*_APP_KEYS)
    values = extract_json(lines, list(k.used))
    values = values.with_columns(
        *[schema.absent_to_null(pl.col(p)).alias(p) for p in k.used],
        lines.cast(pl.String).fill_null("").alias("_line"),
    )
    if augment is not None:
        values = augment(values)
    kind = pl.col("_json")
    blank = pl.col("_line").str.strip_chars() == ""
    record = (kind == "object") & is_record.fill_null(False)
    other = (kind == "object") & ~record
    skip = blank | (other & app & ~pl.col("_line").str.contains(_HTTP_HINT))
    reject = (
        pl.when(skip)
        .then(None)
        .when(kind == "invalid")
        .then(pl.lit("invalid JSON"))
        .when(kind == "other")
        .then(pl.lit("not a JSON object"))
        .when(other)
        .then(pl.lit(f"not a {name} record"))
    )
    frame = values.select(
        *[e.alias(col) for col, e in columns.items()], reject.alias("_reject"), skip.alias("_skip")
    )
    return schema.finish(frame)


# --- formats ----------------------------------------------------------------------------------


def _apigw(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    route_key = k.col("routeKey")
    key_method = route_key.str.extract(r"^([A-Z]+) ", 1)
    route = pl.coalesce(
        route_key.str.extract(r"^(?:[A-Z]+ )?(/\S*)$", 1), k.col("resourcePath")
    )
    method = pl.coalesce(
        k.col("httpMethod"), pl.when(key_method != "ANY").then(key_method)
    )
    path = k.col("path")
    columns = {
        "ts": pl.coalesce(parse_epoch(_int(k.col("requestTimeEpoch"))), parse_any(k.col("requestTime"))),
        "client_ip": _address(k.first("ip", "sourceIp", "identity/sourceIp", "identity.sourceIp")),
        "user_agent": k.first("userAgent", "identity/userAgent", "identity.userAgent"),
        "method": method,
        **_target(path),
        "route": route,
        "host": k.col("domainName"),
        "status": _int(k.col("status")),
        "upstream_status": _upstream_status(
            k.first("integrationStatus", "integration/status", "integration.status")
        ),
        "bytes": _int(k.col("responseLength")),
        "duration_ms": _num(
            k.first("responseLatency", "integrationLatency", "integration/latency", "integration.latency")
        ),
        "request_id": k.first("requestId", "extendedRequestId"),
        "message": _message(
            k,
            (
                "errorMessage",
                "error/message",
                "error.message",
                "error/messageString",
                "error.messageString",
                "integrationErrorMessage",
                "integration/error",
                "integration.error",
                *ERROR_KEYS[3:],
            ),
            GENERIC_KEYS,
            method,
            path,
        ),
    }
    return columns, k.present("requestId") & k.present("httpMethod", "routeKey", "resourcePath")


def _kong(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("request/method")
    target = _target(k.first("request/uri", "request/url"))
    route_path = k.col("route/paths/0")
    template = (
        route_path.str.strip_prefix("~")
        .str.replace_all(r"\(\?P?<(\w+)>[^()]*\)", "{${1}}")
        .str.strip_prefix("^")
        .str.strip_suffix("$")
    )
    # Kong's plain `paths` are prefixes, not templates; only a regex path with named groups is one.
    route = pl.when(
        route_path.str.starts_with("~") & ~template.str.contains(r"[()\[\]\\*+?|^$]")
    ).then(template)
    status = _int(k.col("response/status"))
    upstream = _upstream_status(k.col("upstream_status"))
    columns = {
        "ts": parse_epoch(k.col("started_at")),
        "client_ip": _address(k.col("client_ip")),
        "user_agent": k.first("request/headers/user-agent/0", "request/headers/user-agent"),
        "method": method,
        **target,
        "route": route,
        "host": k.first("request/headers/host/0", "request/headers/host"),
        "status": status,
        # Kong 3 says where the response came from; "upstream" means the service answered.
        "upstream_status": pl.coalesce(upstream, pl.when(k.col("source") == "upstream").then(status)),
        "bytes": _int(k.col("response/size")),
        "duration_ms": _num(k.col("latencies/request")),
        "request_id": k.first(
            "request/id",
            "request/headers/x-kong-request-id",
            "response/headers/x-kong-request-id",
            "request/headers/kong-request-id",
            "response/headers/kong-request-id",
        ),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("request/method") & k.present("response/status")


def _traefik(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("RequestMethod")
    target = _target(k.col("RequestPath"))
    columns = {
        "ts": k.each(("StartUTC", "StartLocal", "time"), parse_iso),
        "client_ip": _address(k.first("ClientHost", "ClientAddr")),
        "user_agent": k.col("request_User-Agent"),
        "method": method,
        **target,
        "host": k.first("RequestHost", "RequestAddr"),
        "status": _int(k.col("DownstreamStatus")),
        "upstream_status": _upstream_status(k.col("OriginStatus")),
        "bytes": _int(k.first("DownstreamContentSize", "OriginContentSize")),
        "duration_ms": _num(k.first("Duration", "OriginDuration")) / 1e6,
        "request_id": k.first("request_X-Request-Id", "request_X-Request-ID", "request_X-Correlation-Id"),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("RequestMethod", "DownstreamStatus")


def _caddy(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("request/method")
    logger = k.col("logger")
    duration = k.col("duration")
    columns = {
        "ts": _ts(k.col("ts")),
        "client_ip": _address(k.first("request/client_ip", "request/remote_ip", "request/remote_addr")),
        "user_agent": k.first("request/headers/User-Agent/0", "request/headers/User-Agent"),
        "method": method,
        **_target(k.col("request/uri")),
        "host": k.col("request/host"),
        "status": _int(k.col("status")),
        "bytes": _int(k.col("size")),
        "duration_ms": pl.coalesce(_go_duration_ms(duration), _num(duration) * 1e3),
        "request_id": k.first("request/headers/X-Request-Id/0", "request/headers/X-Request-ID/0"),
        # `msg` is always "handled request": only an error field is a reason.
        "message": pl.coalesce([_scalar_text(k.col(p)) for p in ERROR_KEYS]),
    }
    # http.log.error lines repeat the request of a failed access line: not a second request.
    access = pl.coalesce(
        logger.str.starts_with("http.log.access"),
        k.col("msg") == "handled request",
    )
    return columns, access.fill_null(False) & k.present("request/method") & k.present("status")


def _envoy(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.first("method", ":method", "request_method")
    target = _target(
        k.first(
            "x-envoy-origin-path",
            "x_envoy_origin_path",
            "x-envoy-original-path",
            "x_envoy_original_path",
            "path",
            ":path",
        )
    )
    status = _int(k.col("response_code"))
    upstream = _upstream_status(k.first("upstream_response_code", "upstream_status"))
    columns = {
        "ts": k.each(("start_time", "timestamp", "@timestamp"), _ts),
        "client_ip": _address(
            k.first(
                "x_forwarded_for",
                "x-forwarded-for",
                "downstream_remote_address",
                "downstream_direct_remote_address",
            )
        ),
        "user_agent": k.first("user_agent", "user-agent", "useragent"),
        "method": method,
        **target,
        "host": k.first("authority", ":authority", "host"),
        "status": status,
        # "via_upstream": the service's own response went through unchanged.
        "upstream_status": pl.coalesce(
            upstream, pl.when(k.col("response_code_details") == "via_upstream").then(status)
        ),
        "bytes": _int(k.col("bytes_sent")),
        "duration_ms": _num(k.col("duration")),
        "request_id": k.first("request_id", "x-request-id", "x_request_id"),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("response_code")


def _ecs_paths(dotted: str) -> tuple[str, ...]:
    """Every way an ECS field can be spelled: nested, dotted or any mix (`http.request/method`)."""
    parts = dotted.split(".")
    spellings = []
    for seps in itertools.product("/.", repeat=len(parts) - 1):
        spellings.append(parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True)))
    return tuple(spellings)


def _ecs(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    def field(*names: str) -> pl.Expr:
        return k.first(*[p for n in names for p in _ecs_paths(n)])

    method = field("http.request.method")
    path = field("url.path")
    target = _target(field("url.original", "url.full"), path, field("url.query"))
    columns = {
        "ts": k.each(("@timestamp", "timestamp"), _ts),
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
        "message": _message(
            k, (*_ecs_paths("error.message"), *ERROR_KEYS[2:]), GENERIC_KEYS, method, target["path"]
        ),
    }
    is_record = k.present(*_ecs_paths("http.request.method"), *_ecs_paths("http.response.status_code"))
    return columns, is_record


# OTel attribute names, current first, then the pre-1.21 names.
_OTEL = {
    "method": ("http.request.method", "http.method"),
    "path": ("url.path",),
    "query": ("url.query",),
    "target": ("http.target", "url.full", "http.url"),
    "route": ("http.route",),
    "status": ("http.response.status_code", "http.status_code"),
    "client": ("client.address", "http.client_ip", "net.peer.ip", "net.sock.peer.addr", "network.peer.address"),
    "user_agent": ("user_agent.original", "http.user_agent"),
    "host": ("server.address", "http.host", "net.host.name"),
    "bytes": ("http.response.body.size", "http.response_content_length"),
    "request_id": ("http.request.header.x-request-id",),
    "error": ("error.message", "exception.message"),
}


def _otel(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    k.col("attributes")  # the OTLP list form is read from the raw JSON by `_otel_list`

    def attr(field: str) -> pl.Expr:
        flat = [f"attributes/{name}" for name in _OTEL[field]]
        listed = [pl.col(f"_attr:{name}") for name in _OTEL[field]]
        return pl.coalesce([*[k.col(p) for p in flat], *listed])

    method = attr("method")
    target = _target(attr("target"), attr("path"), attr("query"))
    start = _int(k.col("startTimeUnixNano"))
    end = _int(k.col("endTimeUnixNano"))
    body = pl.coalesce(k.col("body/stringValue"), k.col("body"))
    columns = {
        "ts": k.each(("timeUnixNano", "observedTimeUnixNano", "startTimeUnixNano", "timestamp", "time"), _ts),
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
            pl.when(body.str.contains(pl.concat_str([method, pl.lit(" ")]), literal=True).fill_null(False))
            .then(None)
            .otherwise(_scalar_text(body)),
        ),
    }
    return columns, method.is_not_null() | attr("status").is_not_null()


def _otel_list(values: pl.DataFrame) -> pl.DataFrame:
    """Attributes in OTLP's list form, `[{"key": k, "value": {"stringValue": v}}]`, by name."""
    names = sorted({n for group in _OTEL.values() for n in group})
    listed = values["attributes"].str.strip_chars_start().str.starts_with("[").fill_null(False)
    if not listed.any():
        return values.with_columns([pl.lit(None, pl.String).alias(f"_attr:{n}") for n in names])
    value = (
        "coalesce(json_extract_string(x.value, '$.stringValue'), json_extract_string(x.value, "
        "'$.intValue'), json_extract_string(x.value, '$.doubleValue'), json_extract_string("
        "x.value, '$.boolValue'), json_extract_string(x.value, '$.arrayValue.values[0].stringValue'))"
    )
    picks = ", ".join(
        f"list_filter(kv, lambda x: x.k = {_sql_text(n)})[1].v AS c{i}" for i, n in enumerate(names)
    )
    query = (
        f"SELECT {picks} FROM (SELECT list_transform(try(from_json(attributes, "
        f"'[{{\"key\":\"VARCHAR\",\"value\":\"JSON\"}}]')), lambda x: {{'k': x.key, 'v': {value}}}) "
        "AS kv FROM src)"
    )
    src = pl.DataFrame({"attributes": values.select(pl.when(listed).then(pl.col("attributes"))).to_series()})
    got = _sql(query, src)
    return values.with_columns(
        [schema.absent_to_null(got[f"c{i}"].cast(pl.String)).alias(f"_attr:{n}") for i, n in enumerate(names)]
    )


def _json(k: _Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    request = k.first("request", "request_line", "requestLine")
    line = request.str.extract_groups(r"^([A-Z][A-Z0-9_-]*) (\S+)(?: HTTP/[0-9.]+)?$")
    method = k.first(
        "method", "request_method", "requestMethod", "http_method", "httpMethod", "verb",
        "http/method", "http.method",
    )
    method = pl.coalesce(method, line.struct.field("1"))
    raw_target = pl.coalesce(
        k.first(
            "request_uri", "requestUri", "uri", "path", "url", "request_path", "requestPath",
            "url_path", "http/url", "http.url", "http/path",
        ),
        line.struct.field("2"),
        pl.when(request.str.contains(r"^(?:/|https?://)")).then(request),
    )
    target = _target(
        raw_target,
        None,
        k.first("query", "query_string", "querystring", "args", "request_query", "url_query"),
    )
    status = k.each(
        (
            "status", "status_code", "statusCode", "response_code", "responseCode", "http_status",
            "httpStatus", "response_status", "responseStatus", "http/status_code",
            "http.status_code", "http/status", "code", "response",
        ),
        _http_status,
    )
    unit = [
        (("duration_ms", "durationMs", "latency_ms", "latencyMs", "elapsed_ms", "elapsedMs",
          "response_time_ms", "responseTimeMs", "request_time_ms", "took_ms", "time_ms"), 1.0),
        (("request_time", "duration_s", "duration_sec", "duration_seconds", "latency_s",
          "latency_seconds", "response_time_s", "elapsed_s"), 1e3),
        (("duration_us", "duration_micros", "latency_us", "elapsed_us"), 1e-3),
        (("duration_ns", "duration_nanos", "latency_ns", "elapsed_ns"), 1e-6),
    ]
    duration = pl.coalesce(
        *[k.each(keys, lambda e, f=factor: _num(e) * f) for keys, factor in unit],
        k.each(("duration", "latency", "elapsed", "response_time", "responseTime", "took", "time_taken"),
               _guess_duration_ms),
    )
    columns = {
        "ts": k.each(
            (
                "time", "timestamp", "@timestamp", "ts", "date", "datetime", "time_iso8601",
                "time_local", "timeMillis", "msec", "start_time", "created_at", "event_datetime",
                "logged_at", "Timestamp",
            ),
            _ts,
        ),
        "client_ip": _address(
            k.first(
                "remote_addr", "client_ip", "clientIp", "clientip", "ip", "remote_ip", "remoteIp",
                "remote_address", "client_addr", "client_address", "client", "src_ip",
                "source_ip", "network/client/ip", "network.client.ip", "x_forwarded_for",
                "http_x_forwarded_for", "xff",
            )
        ),
        "user_agent": k.first(
            "user_agent", "http_user_agent", "userAgent", "ua", "agent", "user-agent", "useragent",
            "http/useragent", "http.useragent", "http/user_agent",
        ),
        "method": method,
        **target,
        "route": k.first("route", "http_route", "http.route", "route_template"),
        "host": k.first("host", "http_host", "server_name", "vhost", "domain", "authority"),
        "status": status,
        "upstream_status": _upstream_status(
            k.first("upstream_status", "upstreamStatus", "upstream_response_code", "upstream_code")
        ),
        "bytes": k.each(
            (
                "bytes", "body_bytes_sent", "bytes_sent", "size", "response_size", "responseSize",
                "response_bytes", "resp_bytes", "bytes_out", "response_length", "responseLength",
            ),
            _int,
        ),
        "duration_ms": duration,
        "request_id": k.first(
            "request_id", "requestId", "req_id", "reqId", "x_request_id", "http_x_request_id",
            "x-request-id", "request-id", "correlation_id", "trace_id", "traceId",
        ),
        "message": _message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, status.is_not_null() | method.is_not_null()


def _parser(name: str, build: Build) -> Callable[[pl.Series, ParserState], pl.DataFrame]:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        return _run(lines, name, build)

    parse.__name__ = f"parse_{name}"
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
    """Envoy's JSON access log and its default text format, line by line, in one stream."""
    is_json = lines.cast(pl.String).fill_null("").str.strip_chars_start().str.starts_with("{")
    if is_json.all():
        return parse_envoy_json(lines, state)
    rows = pl.int_range(0, len(lines), dtype=pl.Int64, eager=True)
    text_lines = lines.filter(~is_json)
    try:
        from ingest.formats.proxies import parse_envoy_text
    except ImportError:
        text = schema.finish(
            pl.DataFrame({"_reject": pl.repeat("not an envoy JSON line", len(text_lines), eager=True)})
        )
    else:
        text = parse_envoy_text(text_lines, state)
    parts = [text.with_columns(rows.filter(~is_json).alias("_row"))]
    if is_json.any():
        json_part = parse_envoy_json(lines.filter(is_json), state)
        parts.append(json_part.with_columns(rows.filter(is_json).alias("_row")))
    return pl.concat(parts, how="vertical_relaxed").sort("_row").drop("_row")


FORMATS: list[Format] = [
    Format("apigw", parse_apigw, "AWS API Gateway JSON access log (requestId, httpMethod, routeKey, ...)"),
    Format("kong", parse_kong, "Kong file-log plugin JSON"),
    Format("traefik", parse_traefik, "Traefik JSON access log"),
    Format("caddy", parse_caddy, "Caddy JSON access log (http.log.access)"),
    Format("envoy", parse_envoy, "Envoy access log, JSON keys or the default text format"),
    Format("ecs", parse_ecs, "Elastic Common Schema JSON, nested or dotted keys"),
    Format("otel", parse_otel, "OpenTelemetry HTTP semantic conventions (log records or spans)"),
    Format("json", parse_json, "any JSON lines with common key names"),
]
