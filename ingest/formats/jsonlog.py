"""JSON access logs (parse stage): API Gateway, Kong, Traefik, Caddy, Envoy, ECS, OTel, any JSON.

The formats of particular products live here, with the list of every JSON format in detection
order; the formats that follow a convention (ECS, OTel, common key names) are in `jsonconventions`,
what they all share in `jsonrecords`, and the DuckDB extraction beneath it in `jsonpaths`.
"""

from __future__ import annotations

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.formats.jsonconventions import parse_ecs, parse_json, parse_otel
from conflictradar.ingest.formats.jsonrecords import (
    ERROR_KEYS,
    GENERIC_KEYS,
    Keys,
    address,
    go_duration_ms,
    keys,
    message,
    record_parser,
    scalar_text,
    target_columns,
    timestamp,
    to_float,
    to_int,
    upstream_status,
)
from conflictradar.ingest.timestamps import parse_epoch, parse_iso


def _apigw(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    route_key = k.col("routeKey")
    key_method = route_key.str.extract(r"^([A-Z]+) ", 1)
    method = pl.coalesce(k.col("httpMethod"), pl.when(key_method != "ANY").then(key_method))
    path = k.col("path")
    errors = keys(
        "errorMessage error/message error.message error/messageString error.messageString "
        "integrationErrorMessage integration/error integration.error error_message errorMsg err "
        "reason"
    )
    columns = {
        # requestTimeEpoch has milliseconds; requestTime is CLF with seconds only.
        "ts": pl.coalesce(timestamp(k.col("requestTimeEpoch")), timestamp(k.col("requestTime"))),
        "client_ip": address(k.first("ip", "sourceIp", "identity/sourceIp", "identity.sourceIp")),
        "user_agent": k.first("userAgent", "identity/userAgent", "identity.userAgent"),
        "method": method,
        **target_columns(path),
        # `POST /orders/{id}` -> `/orders/{id}`; `$default` is no template.
        "route": pl.coalesce(
            route_key.str.extract(r"^(?:[A-Z]+ )?(/\S*)$", 1), k.col("resourcePath")
        ),
        "host": k.col("domainName"),
        "status": to_int(k.col("status")),
        "upstream_status": upstream_status(
            k.first("integrationStatus", "integration/status", "integration.status")
        ),
        "bytes": to_int(k.col("responseLength")),
        "duration_ms": to_float(
            k.first(
                *keys("responseLatency integrationLatency integration/latency integration.latency")
            )
        ),
        "request_id": k.first("requestId", "extendedRequestId"),
        "message": message(k, errors, GENERIC_KEYS, method, path),
    }
    return columns, k.present("requestId") & k.present("httpMethod", "routeKey", "resourcePath")


def _kong(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("request/method")
    target = target_columns(k.first("request/uri", "request/url"))
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
    status = to_int(k.col("response/status"))
    columns = {
        "ts": parse_epoch(k.col("started_at")),
        "client_ip": address(k.col("client_ip")),
        "user_agent": k.first("request/headers/user-agent/0", "request/headers/user-agent"),
        "method": method,
        **target,
        "route": pl.when(route_path.str.starts_with("~") & ~regex_left).then(template),
        "host": k.first("request/headers/host/0", "request/headers/host"),
        "status": status,
        # Kong 3 says where the response came from; "upstream" means the service answered.
        "upstream_status": pl.coalesce(
            upstream_status(k.col("upstream_status")),
            pl.when(k.col("source") == "upstream").then(status),
        ),
        "bytes": to_int(k.col("response/size")),
        "duration_ms": to_float(k.col("latencies/request")),
        "request_id": k.first(
            *keys(
                "request/id request/headers/x-kong-request-id response/headers/x-kong-request-id "
                "request/headers/kong-request-id response/headers/kong-request-id"
            )
        ),
        "message": message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("request/method") & k.present("response/status")


def _traefik(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.col("RequestMethod")
    target = target_columns(k.col("RequestPath"))
    columns = {
        # StartUTC is the request's start with nanoseconds; `time` is when the line was written.
        "ts": parse_iso(k.first("StartUTC", "StartLocal", "time")),
        "client_ip": address(k.first("ClientHost", "ClientAddr")),
        "user_agent": k.col("request_User-Agent"),
        "method": method,
        **target,
        "host": k.first("RequestHost", "RequestAddr"),
        "status": to_int(k.col("DownstreamStatus")),
        "upstream_status": upstream_status(k.col("OriginStatus")),
        "bytes": to_int(k.first("DownstreamContentSize", "OriginContentSize")),
        "duration_ms": to_float(k.first("Duration", "OriginDuration")) / 1e6,
        "request_id": k.first("request_X-Request-Id", "request_X-Correlation-Id"),
        "message": message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("RequestMethod", "DownstreamStatus")


def _caddy(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    duration = k.col("duration")
    columns = {
        "ts": timestamp(k.col("ts")),
        "client_ip": address(
            k.first("request/client_ip", "request/remote_ip", "request/remote_addr")
        ),
        "user_agent": k.first("request/headers/User-Agent/0", "request/headers/User-Agent"),
        "method": k.col("request/method"),
        **target_columns(k.col("request/uri")),
        "host": k.col("request/host"),
        "status": to_int(k.col("status")),
        "bytes": to_int(k.col("size")),
        "duration_ms": pl.coalesce(go_duration_ms(duration), to_float(duration) * 1e3),
        "request_id": k.col("request/headers/X-Request-Id/0"),
        # `msg` is always "handled request": only an error field is a reason.
        "message": pl.coalesce([scalar_text(k.col(p)) for p in ERROR_KEYS]),
    }
    # Only http.log.access lines are requests; every other logger (admin, tls, http.log.error,
    # which repeats the request of a failed access line) is caddy talking about itself.
    logger = k.col("logger")
    columns["_skip"] = logger.is_not_null() & ~logger.str.starts_with("http.log.access")
    access = pl.coalesce(
        logger.str.starts_with("http.log.access"), k.col("msg") == "handled request"
    )
    return columns, access & k.present("request/method") & k.present("status")


def _envoy(k: Keys) -> tuple[dict[str, pl.Expr], pl.Expr]:
    method = k.first("method", ":method", "request_method")
    target = target_columns(
        k.first(
            *keys(
                "x-envoy-origin-path x_envoy_origin_path x-envoy-original-path "
                "x_envoy_original_path path :path"
            )
        )
    )
    status = to_int(k.col("response_code"))
    client = k.first(
        *keys(
            "x_forwarded_for x-forwarded-for downstream_remote_address "
            "downstream_direct_remote_address"
        )
    )
    columns = {
        "ts": timestamp(k.first("start_time", "timestamp", "@timestamp")),
        "client_ip": address(client),
        "user_agent": k.first("user_agent", "user-agent"),
        "method": method,
        **target,
        "host": k.first("authority", ":authority", "host"),
        "status": status,
        # "via_upstream": the service's own response went through unchanged.
        "upstream_status": pl.coalesce(
            upstream_status(k.first("upstream_response_code", "upstream_status")),
            pl.when(k.col("response_code_details") == "via_upstream").then(status),
            # Envoy answered by itself (a direct response, a filter): no upstream host, 0.
            pl.when(
                k.col("response_code_details").is_not_null() & k.col("upstream_host").is_null()
            ).then(pl.lit(0)),
        ),
        "bytes": to_int(k.col("bytes_sent")),
        "duration_ms": to_float(k.col("duration")),
        "request_id": k.first("request_id", "x-request-id", "x_request_id"),
        "message": message(k, ERROR_KEYS, GENERIC_KEYS, method, target["path"]),
    }
    return columns, k.present("response_code")


parse_apigw = record_parser("apigw", _apigw)
parse_kong = record_parser("kong", _kong)
parse_traefik = record_parser("traefik", _traefik)
parse_caddy = record_parser("caddy", _caddy)
parse_envoy_json = record_parser("envoy", _envoy)


def parse_envoy(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    """Envoy's JSON access log and its default text format, in any mix, row-aligned."""
    is_json = lines.cast(pl.String).fill_null("").str.contains(r"^[\s\ufeff]*\{")
    if is_json.all():
        return parse_envoy_json(lines, state)
    rows = pl.int_range(0, len(lines), dtype=pl.Int64, eager=True)
    # Ambassador/Emissary put `ACCESS ` before envoy's text line.
    text_lines = lines.filter(~is_json).str.replace(r"^ACCESS (\[)", "${1}")
    try:
        from conflictradar.ingest.formats.proxies import parse_envoy_text
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
