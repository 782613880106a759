"""JSON access logs by convention rather than by product (parse stage): ECS, OTel, any JSON.

Elastic Common Schema and OpenTelemetry's HTTP semantic conventions name the fields the same way
whichever program wrote the line, and `json` reads any JSON lines by the key names servers and
frameworks commonly use. The formats of particular products are in `jsonlog`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import ParserState
from conflictradar.ingest.formats.jsonpaths import sql, sql_text
from conflictradar.ingest.formats.jsonrecords import (
    ERROR_KEYS,
    GENERIC_KEYS,
    Keys,
    address,
    go_duration_ms,
    keys,
    message,
    parse_records,
    record_parser,
    scalar_text,
    target_columns,
    timestamp,
    to_float,
    to_int,
    upstream_status,
)


def _scaled(factor: float) -> Callable[[pl.Expr], pl.Expr]:
    def convert(e: pl.Expr) -> pl.Expr:
        return to_float(e) * factor

    return convert


def _http_status(e: pl.Expr) -> pl.Expr:
    code = to_int(e)
    return pl.when(code.is_between(100, 599)).then(code)


def _guess_duration_ms(e: pl.Expr) -> pl.Expr:
    """A duration whose key names no unit: a unit suffix wins, else a fraction means seconds
    (`0.012`) and an integer milliseconds (`12`)."""
    integer = e.str.contains(r"^\s*\d+\s*$")
    return pl.coalesce(
        go_duration_ms(e), pl.when(integer).then(to_float(e)).otherwise(to_float(e) * 1e3)
    )


def _ecs_paths(dotted: str) -> tuple[str, ...]:
    """Every spelling of an ECS field: nested, dotted, or a mix such as `http.request/method`."""
    parts = dotted.split(".")
    return tuple(
        parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))
        for seps in itertools.product("/.", repeat=len(parts) - 1)
    )


def _ecs(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    def field(*names: str) -> pl.Expr:
        return k.first(*[p for n in names for p in _ecs_paths(n)])

    method = field("http.request.method")
    target = target_columns(
        field("url.original", "url.full"), field("url.path"), field("url.query")
    )
    errors = (*_ecs_paths("error.message"), *ERROR_KEYS[2:])
    columns = {
        "ts": timestamp(k.first("@timestamp", "timestamp")),
        # The originating client (SPEC 5): behind a gateway, `source.*` is the gateway.
        "client_ip": address(field("client.ip", "client.address", "source.ip", "source.address")),
        "user_agent": field("user_agent.original"),
        "method": method,
        **target,
        "route": field("http.route"),
        "host": field("url.domain", "host.name"),
        "status": to_int(field("http.response.status_code")),
        "bytes": to_int(field("http.response.body.bytes", "http.response.bytes")),
        "duration_ms": to_float(field("event.duration")) / 1e6,
        "request_id": field("http.request.id", "trace.id", "transaction.id"),
        "message": message(k, errors, GENERIC_KEYS, method, target["path"]),
    }
    http = (*_ecs_paths("http.request.method"), *_ecs_paths("http.response.status_code"))
    return columns, k.present(*http)


# OTel attribute names by field, current names first, then the pre-1.21 ones.
_OTEL = {
    "method": keys("http.request.method http.method"),
    "path": keys("url.path"),
    "query": keys("url.query"),
    "target": keys("http.target url.full http.url"),
    "route": keys("http.route"),
    "status": keys("http.response.status_code http.status_code"),
    "client": keys(
        "client.address http.client_ip net.peer.ip net.sock.peer.addr network.peer.address"
    ),
    "user_agent": keys("user_agent.original http.user_agent"),
    "host": keys("server.address http.host net.host.name"),
    "bytes": keys("http.response.body.size http.response_content_length"),
    "request_id": keys("http.request.header.x-request-id"),
    "error": keys("error.message exception.message"),
}


def _otel(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    def attr(field: str) -> pl.Expr:
        # The flat-map form is read here; `_otel_list` fills `_attr:` columns from the list form.
        names = _OTEL[field]
        return pl.coalesce(
            *[k.col(f"attributes/{n}") for n in names], *[pl.col(f"_attr:{n}") for n in names]
        )

    method = attr("method")
    target = target_columns(attr("target"), attr("path"), attr("query"))
    start = to_int(k.col("startTimeUnixNano"))
    end = to_int(k.col("endTimeUnixNano"))
    body = scalar_text(k.first("body/stringValue", "body"))
    times = keys("timeUnixNano observedTimeUnixNano startTimeUnixNano timestamp time")
    columns = {
        "ts": k.each(times, timestamp),
        "client_ip": address(attr("client")),
        "user_agent": attr("user_agent"),
        "method": method,
        **target,
        "route": attr("route"),
        "host": attr("host"),
        "status": to_int(attr("status")),
        "bytes": to_int(attr("bytes")),
        "duration_ms": pl.when(end >= start).then((end - start) / 1e6),
        "request_id": pl.coalesce(attr("request_id"), k.first("traceId", "trace_id")),
        "message": pl.coalesce(
            scalar_text(attr("error")),
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
        f"list_filter(kv, lambda x: x.k = {sql_text(n)})[1].v AS c{i}" for i, n in enumerate(names)
    )
    query = (
        f"SELECT {picks} FROM (SELECT list_transform(try(from_json(json_extract(line, "
        '\'$.attributes\'), \'[{"key":"VARCHAR","value":"JSON"}]\')), lambda x: {\'k\': x.key, '
        f"'v': coalesce({value} json_extract_string(x.value, '$.arrayValue.values[0].stringValue'"
        "))}) AS kv FROM src)"
    )
    got = sql(query, pl.DataFrame({"line": lines.filter(listed)}))
    at = listed.arg_true()
    out = []
    for i, n in enumerate(names):
        col = pl.repeat(None, len(values), dtype=pl.String, eager=True).alias(f"_attr:{n}")
        found = got[f"c{i}"].cast(pl.String)
        out.append(col.scatter(at, found.set(found.is_in(schema.ABSENT), None)))
    return values.with_columns(out)


def _json(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    request = k.first("request", "request_line", "requestLine")
    line = request.str.extract_groups(r"^([A-Z][A-Z0-9_-]*) (\S+)(?: HTTP/[0-9.]+)?$")
    method = pl.coalesce(
        k.first(
            *keys(
                "method request_method requestMethod http_method httpMethod verb http/method "
                "http.method"
            )
        ),
        line.struct.field("1"),
    )
    raw_target = pl.coalesce(
        k.first(
            *keys(
                "request_uri requestUri uri path url request_path requestPath url_path http/url "
                "http.url http/path"
            )
        ),
        line.struct.field("2"),
        pl.when(request.str.contains(r"^(?:/|https?://)")).then(request),
    )
    query = k.first(*keys("query query_string querystring args request_query url_query"))
    target = target_columns(raw_target, None, query)
    status = k.each(
        keys(
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
        *[k.each(keys(words), _scaled(factor)) for words, factor in units],
        k.each(
            keys("duration latency elapsed response_time responseTime took time_taken"),
            _guess_duration_ms,
        ),
    )
    times = keys(
        "time timestamp @timestamp ts date datetime time_iso8601 time_local timeMillis msec "
        "start_time created_at event_datetime logged_at"
    )
    clients = keys(
        "remote_addr client_ip clientIp clientip ip remote_ip remoteIp remote_address client_addr "
        "client_address client src_ip source_ip network/client/ip network.client.ip "
        "x_forwarded_for http_x_forwarded_for xff"
    )
    agents = keys(
        "user_agent http_user_agent userAgent ua agent user-agent http/useragent http.useragent "
        "http/user_agent"
    )
    request_ids = keys(
        "request_id requestId req_id reqId x_request_id http_x_request_id x-request-id "
        "request-id correlation_id trace_id traceId"
    )
    sizes = keys(
        "bytes body_bytes_sent bytes_sent size response_size responseSize response_bytes "
        "resp_bytes bytes_out response_length responseLength"
    )
    columns = {
        "ts": k.each(times, timestamp),
        "client_ip": address(k.first(*clients)),
        "user_agent": k.first(*agents),
        "method": method,
        **target,
        "route": k.first("route", "http_route", "http.route", "route_template"),
        "host": k.first(*keys("host http_host server_name vhost domain authority")),
        "status": status,
        "upstream_status": upstream_status(
            k.first(*keys("upstream_status upstreamStatus upstream_response_code upstream_code"))
        ),
        "bytes": k.each(sizes, to_int),
        "duration_ms": duration,
        "request_id": k.first(*request_ids),
        "message": message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    # A status alone (an app log's `"status": 200`) is no request: it needs a method or a target.
    return columns, method.is_not_null() | (status.is_not_null() & raw_target.is_not_null())


parse_ecs = record_parser("ecs", _ecs)
parse_json = record_parser("json", _json)


def parse_otel(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    return parse_records(lines, "otel", _otel, augment=_otel_list)
