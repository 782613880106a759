"""Text-format parsers (combined, common, vcombined, nginx log_format, Nginx Proxy Manager,
HAProxy, Envoy text): parametrized cases, golden files, the real logs and bad input.

Golden files live in tests/golden/text: `<name>.log` is the input, `<name>.json` the parsed rows.
Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/test_formats_text.py`,
then read the diff.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conflictradar.ingest import schema
from conflictradar.ingest.formats import (
    Format,
    ParserState,
    UnknownFormatError,
    clf,
    get_format,
    nginx,
    proxies,
)

GOLDEN_TEXT = Path(__file__).resolve().parent / "golden" / "text"

NGINX_MAIN = """
    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';
"""
NGINX_JSON = (
    'log_format json_log escape=json \'{"time":"$time_iso8601","remote_addr":"$remote_addr",'
    '"request":"$request","status":"$status","bytes":"$body_bytes_sent",'
    '"ua":"$http_user_agent","request_time":"$request_time","request_id":"$request_id"}\';'
)
NGINX_UPSTREAMINFO = (
    'log_format upstreaminfo \'$remote_addr - $remote_user [$time_local] "$request" '
    '$status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time '
    "[$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr "
    "$upstream_response_length $upstream_response_time $upstream_status $req_id';"
)
NGINX_COMBINED = (
    "log_format combined '$remote_addr - $remote_user [$time_local] "
    '"$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"\';'
)

GOLDEN = {
    "combined_edge_cases": "combined",
    "common": "common",
    "vcombined": "vcombined",
    "nginx_proxy_manager": "nginx-proxy-manager",
    "haproxy": "haproxy",
    "envoy_text": "envoy-text",
    "nginx_main": "nginx:" + NGINX_MAIN,
    "nginx_json": "nginx:" + NGINX_JSON,
    "nginx_upstreaminfo": "nginx:" + NGINX_UPSTREAMINFO,
}

BY_NAME = {f.name: f for f in [*clf.FORMATS, *nginx.FORMATS, *proxies.FORMATS]}


def parser_for(spec: str) -> Any:
    if spec == "envoy-text":
        return proxies.parse_envoy_text
    if spec.startswith("nginx:"):
        return nginx.nginx_format(spec[len("nginx:") :]).parse
    return BY_NAME[spec].parse


def parse(spec: str, lines: list[str]) -> pl.DataFrame:
    return parser_for(spec)(pl.Series(lines, dtype=pl.String), ParserState())


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Parsed rows as JSON-able dicts without nulls; rejects and skips as markers."""
    out: list[dict[str, Any]] = []
    for row in frame.iter_rows(named=True):
        if row["_skip"]:
            out.append({"skip": True})
        elif row["_reject"] is not None:
            out.append({"reject": row["_reject"]})
        else:
            out.append(
                {
                    k: v.isoformat() if isinstance(v, datetime) else v
                    for k, v in row.items()
                    if v is not None and not k.startswith("_")
                }
            )
    return out


def one(spec: str, line: str) -> dict[str, Any]:
    (row,) = rows(parse(spec, [line]))
    return row


def read_lines(path: Path) -> list[str]:
    # What the pipeline hands a parser: decoded text (invalid UTF-8 -> U+FFFD), no line ends.
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


def counts(frame: pl.DataFrame) -> tuple[int, int, int]:
    """(parsed, rejected, skipped)."""
    skipped = int(frame["_skip"].sum())
    rejected = int(frame["_reject"].is_not_null().sum())
    return frame.height - skipped - rejected, rejected, skipped


# --- the parser contract -------------------------------------------------------------------------


ALL_SPECS = [*BY_NAME, "envoy-text", "nginx:" + NGINX_MAIN, "nginx:" + NGINX_UPSTREAMINFO]


def test_format_names_and_order() -> None:
    assert [f.name for f in [*clf.FORMATS, *nginx.FORMATS]] == [
        "vcombined",
        "combined",
        "common",
        "nginx-proxy-manager",
    ]
    assert [f.name for f in proxies.FORMATS] == ["haproxy"]
    assert all(isinstance(f, Format) and f.summary for f in BY_NAME.values())


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_output_has_canonical_shape(spec: str) -> None:
    frame = parse(spec, ["x", ""])
    assert frame.schema == schema.empty().schema
    assert frame.height == 2


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_empty_input(spec: str) -> None:
    frame = parse(spec, [])
    assert frame.schema == schema.empty().schema
    assert frame.height == 0


def test_large_batch_keeps_order() -> None:
    # Large enough that the streaming engine splits the work; `bytes` carries the line number.
    lines = [
        f"192.0.2.{i % 250} - - [05/Oct/2025:12:{i // 60 % 60:02d}:{i % 60:02d} +0000] "
        f'"GET /orders/{i} HTTP/1.1" 200 {i} "-" "agent-{i}"'
        for i in range(300_000)
    ]
    lines[123_456] = "garbage"
    frame = parse("combined", lines)
    assert frame.height == len(lines)
    expected = list(range(300_000))
    expected[123_456] = None  # type: ignore[call-overload]
    assert frame["bytes"].to_list() == expected
    assert frame["path"][299_999] == "/orders/299999"
    assert frame["_reject"][123_456] == "not a combined line"


# --- combined / common / vcombined ---------------------------------------------------------------

TS = "[05/Oct/2025:12:00:00 +0200]"

COMBINED_CASES = [
    (
        "plain",
        f'203.0.113.5 - - {TS} "PUT /api/orders/42 HTTP/1.1" 409 57 "https://ref/" "curl/8.4.0"',
        {
            "ts": "2025-10-05T10:00:00+00:00",
            "client_ip": "203.0.113.5",
            "method": "PUT",
            "path": "/api/orders/42",
            "status": 409,
            "bytes": 57,
            "user_agent": "curl/8.4.0",
        },
    ),
    (
        "ipv6",
        f'2001:db8::1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"',
        {"client_ip": "2001:db8::1"},
    ),
    (
        "xff chain",
        f'10.0.0.2, 10.0.0.1, 127.0.0.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"',
        {"client_ip": "10.0.0.2"},
    ),
    (
        "quoted xff chain before remote_addr",
        f'"10.5.102.222, 199.96.1.1" 10.2.1.185 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"',
        {"client_ip": "10.5.102.222", "path": "/"},
    ),
    (
        "single xff before remote_addr is not a vhost",
        f'198.51.100.1 10.0.0.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"',
        {"client_ip": "198.51.100.1"},
    ),
    (
        "vhost prefix",
        f'api.example.com:443 192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"',
        {"host": "api.example.com", "client_ip": "192.0.2.1"},
    ),
    (
        "ident and user",
        f'192.0.2.1 - alice {TS} "GET / HTTP/1.1" 200 5 "-" "x"',
        {"client_ip": "192.0.2.1"},
    ),
    ("empty request", f'127.0.0.1 - - {TS} "" 400 0 "-" "-"', {"status": 400}),
    ("dash request, dash bytes", f'::1 - - {TS} "-" 408 - "-" "-"', {"status": 408}),
    (
        "escaped quotes",
        f'192.0.2.1 - - {TS} "GET /q?s=\\"a\\" HTTP/1.1" 200 5 "-" "Agent \\"x\\" 1.0"',
        {"path": "/q", "query": 's="a"', "user_agent": 'Agent "x" 1.0'},
    ),
    (
        "escaped backslash before closing quote",
        f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "agent\\\\"',
        {"user_agent": "agent\\"},
    ),
    (
        "percent-encoded path",
        f'192.0.2.1 - - {TS} "GET /filter/27|13%20%D9%85 HTTP/1.1" 200 5 "-" "x"',
        {"path": "/filter/27|13%20%D9%85"},
    ),
    (
        "non-Latin path and query",
        f'192.0.2.1 - - {TS} "GET /заказы/42?лимит=5 HTTP/1.1" 404 5 "-" "x"',
        {"path": "/заказы/42", "query": "лимит=5"},
    ),
    (
        "absolute-form target",
        f'192.0.2.1 - - {TS} "GET http://api.example.com/orders/7?x=1 HTTP/1.1" 200 5 "-" "x"',
        {"path": "/orders/7", "query": "x=1"},
    ),
    (
        "HTTP/0.9 request without protocol",
        f'192.0.2.1 - - {TS} "GET /legacy" 200 5',
        {"method": "GET", "path": "/legacy", "status": 200},
    ),
    (
        "Traefik trailing fields",
        f'172.17.0.1 - - {TS} "GET / HTTP/2" 200 352 "-" "Nikto" 244 "a@docker -> b@docker" '
        '"http://172.17.0.3:80" 42ms',
        {"duration_ms": 42.0, "user_agent": "Nikto"},
    ),
    (
        "nginx $request_time after the agent",
        f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "curl/8" 0.153',
        {"duration_ms": 153.0},
    ),
    (
        "trailing $http_x_forwarded_for",
        f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "curl/8" "203.0.113.1"',
        {"client_ip": "192.0.2.1", "user_agent": "curl/8"},
    ),
    (
        "common line in a combined file",
        f'192.0.2.1 - - {TS} "GET /x HTTP/1.0" 200 1513',
        {"path": "/x", "bytes": 1513},
    ),
    (
        "truncated user agent",
        f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (compatible',
        {"user_agent": "Mozilla/5.0 (compatible"},
    ),
    (
        "TLS bytes as request",
        f'192.0.2.1 - - {TS} "\\x16\\x03\\x01\\x00\\xA5" 400 166 "-" "-"',
        {"status": 400},
    ),
    (
        "fraction of a second",
        '192.0.2.1 - - [05/Oct/2025:12:00:00.250 +0200] "GET / HTTP/1.1" 200 5 "-" "x"',
        {"ts": "2025-10-05T10:00:00.250000+00:00"},
    ),
    ("OPTIONS *", f'192.0.2.1 - - {TS} "OPTIONS * HTTP/1.1" 200 0 "-" "x"', {"path": "*"}),
    (
        "CRLF line end, byte-order mark",
        f'\ufeff192.0.2.1 - - {TS} "GET /x HTTP/1.0" 200 1513\r',
        {"client_ip": "192.0.2.1", "bytes": 1513},
    ),
    (
        "U+FFFD from invalid UTF-8",
        f'192.0.2.1 - - {TS} "GET /caf\ufffd HTTP/1.1" 200 5 "-" "a\ufffdb"',
        {"path": "/caf\ufffd", "user_agent": "a\ufffdb"},
    ),
]


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in COMBINED_CASES],
                         ids=[c[0] for c in COMBINED_CASES])  # fmt: skip
def test_combined(line: str, expected: dict[str, Any]) -> None:
    row = one("combined", line)
    assert "reject" not in row, row
    assert {k: row.get(k) for k in expected} == expected
    if "user_agent" not in expected and '"-" "-"' in line:
        assert "user_agent" not in row


COMBINED_REJECTS = [
    ("fragment holding only a user agent", ' "Python-urllib/2.7"', "not a combined line"),
    ("truncated inside the request", f'192.0.2.1 - - {TS} "GET /half', "no valid status"),
    ("truncated before the request", "192.0.2.1 - - [05/Oct/2025:12:0", "not a combined line"),
    ("status dash", f'192.0.2.1 - - {TS} "GET / HTTP/1.1" - - "-" "x"', "no valid status"),
    ("impossible date", '192.0.2.1 - - [31/Feb/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 5',
     "no valid timestamp"),
    ("apache error log", "[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10] AH01618",
     "not a combined line"),
    ("nginx error log", '2021/12/01 13:53:33 [error] 31#31: *46 open() "/x" failed, client: 1.2.3',
     "not a combined line"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason"), [c[1:] for c in COMBINED_REJECTS],
                         ids=[c[0] for c in COMBINED_REJECTS])  # fmt: skip
def test_combined_rejects(line: str, reason: str) -> None:
    assert one("combined", line) == {"reject": reason}


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_blank_lines_are_skipped(line: str) -> None:
    for spec in ALL_SPECS:
        assert one(spec, line) == {"skip": True}, spec


def test_common_ignores_agent_and_tolerates_extras() -> None:
    line = f'192.0.2.1 - - {TS} "GET /a HTTP/1.1" 200 5 "https://ref/" "curl/8" 0.153'
    row = one("common", line)
    assert row == {
        "ts": "2025-10-05T10:00:00+00:00",
        "client_ip": "192.0.2.1",
        "method": "GET",
        "path": "/a",
        "status": 200,
        "bytes": 5,
    }


VCOMBINED_CASES = [
    ("%v:%p", 'shop.example.com:443 192.0.2.1 - - {ts} "GET / HTTP/1.1" 200 5 "-" "x"',
     {"host": "shop.example.com", "client_ip": "192.0.2.1"}),
    ("%v", 'vhost1.example.fr 123.123.123.123 - - {ts} "GET / HTTP/1.1" 200 5 "-" "x"',
     {"host": "vhost1.example.fr", "client_ip": "123.123.123.123"}),
    ("address as vhost", '10.0.0.5 2001:db8::7 - bob {ts} "GET / HTTP/1.1" 200 5 "-" "x"',
     {"host": "10.0.0.5", "client_ip": "2001:db8::7"}),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in VCOMBINED_CASES],
                         ids=[c[0] for c in VCOMBINED_CASES])  # fmt: skip
def test_vcombined(line: str, expected: dict[str, Any]) -> None:
    row = one("vcombined", line.format(ts=TS))
    assert {k: row.get(k) for k in expected} == expected


def test_vcombined_requires_the_vhost() -> None:
    line = f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"'
    assert one("vcombined", line) == {"reject": "not a vcombined line"}


# --- nginx log_format ----------------------------------------------------------------------------


def test_nginx_default_combined_directive_uses_the_fast_parser() -> None:
    fmt = nginx.nginx_format(NGINX_COMBINED)
    assert fmt.name == "nginx:combined"
    line = f'192.0.2.1 - - {TS} "PUT /a/1 HTTP/1.1" 409 5 "-" "curl/8"'
    assert rows(fmt.parse(pl.Series([line]), ParserState())) == rows(parse("combined", [line]))
    assert nginx.nginx_format("combined").name == "nginx:combined"


@pytest.mark.parametrize(
    ("directive", "name"),
    [
        (NGINX_MAIN, "nginx:main"),
        ("main '$time_local $status'", "nginx:main"),
        ("'$time_local $status'", "nginx"),
        ('"$time_local $status"', "nginx"),
        ("$time_local $status", "nginx"),
        ("log_format x escape=none '$msec' ' $status';", "nginx:x"),
    ],
)
def test_nginx_format_names(directive: str, name: str) -> None:
    assert nginx.nginx_format(directive).name == name


def test_nginx_directive_pieces_are_concatenated() -> None:
    spec = nginx.parse_directive("log_format t escape=json '$msec '\n\t\"$status\" '\\'x\\'';")
    assert spec == nginx.LogFormat("t", "json", "$msec $status'x'")


def test_nginx_via_get_format() -> None:
    fmt = get_format("nginx:'[$time_iso8601] $status $request_method $uri $request_id'")
    row = one_with(fmt, "[2025-10-05T12:00:00+02:00] 409 DELETE /api/x/1 abc")
    assert row == {
        "ts": "2025-10-05T10:00:00+00:00",
        "method": "DELETE",
        "path": "/api/x/1",
        "status": 409,
        "request_id": "abc",
    }


def one_with(fmt: Format, line: str) -> dict[str, Any]:
    (row,) = rows(fmt.parse(pl.Series([line]), ParserState()))
    return row


NGINX_CASES = [
    (
        "request_time, upstream_status list, request_id, host",
        '\'$remote_addr [$time_local] "$request" $status $upstream_status '
        "$request_time $request_id $host'",
        f'192.0.2.1 {TS} "PATCH /a/1?v=2 HTTP/1.1" 409 502, 409 0.012 r-1 api.example.com',
        {
            "client_ip": "192.0.2.1",
            "method": "PATCH",
            "path": "/a/1",
            "query": "v=2",
            "status": 409,
            "upstream_status": 409,
            "duration_ms": 12.0,
            "request_id": "r-1",
            "host": "api.example.com",
        },
    ),
    (
        "upstream_status after an internal redirect",
        "'$time_local $status $upstream_status'",
        "05/Oct/2025:12:00:00 +0200 409 504 : 409",
        {"status": 409, "upstream_status": 409},
    ),
    (
        "no upstream",
        "'$time_local $status $upstream_status $request_time'",
        "05/Oct/2025:12:00:00 +0200 409 - 0.000",
        {"status": 409, "upstream_status": None, "duration_ms": 0.0},
    ),
    (
        "no upstream reached: $upstream_addr logged as -",
        "'$time_local $status $upstream_addr $upstream_status'",
        "05/Oct/2025:12:00:00 +0200 409 - -",
        {"status": 409, "upstream_status": 0},
    ),
    (
        "upstream reached, its status not logged",
        "'$time_local $status $upstream_addr $upstream_status'",
        "05/Oct/2025:12:00:00 +0200 409 10.0.0.5:8080, 10.0.0.6:8080 -",
        {"status": 409, "upstream_status": None},
    ),
    (
        "$request_method $request_uri $server_name $http_x_request_id",
        "'$msec $request_method $request_uri $status $server_name $http_x_request_id'",
        "1759665600.123 POST /orders?dry=1 201 shop.example.com req-9",
        {
            "ts": "2025-10-05T12:00:00.123000+00:00",
            "method": "POST",
            "path": "/orders",
            "query": "dry=1",
            "status": 201,
            "host": "shop.example.com",
            "request_id": "req-9",
        },
    ),
    (
        "$uri and $args, ${braced} variables, unknown variables ignored",
        "'${time_iso8601} $scheme://$http_host$uri?$args $status $bytes_sent "
        "$upstream_cache_status'",
        "2025-10-05T12:00:00Z https://api.example.com/a/b?x=1 200 512 HIT",
        {"path": "/a/b", "query": "x=1", "host": "api.example.com", "bytes": 512},
    ),
    (
        "$http_x_forwarded_for wins over $remote_addr",
        "'$remote_addr \"$http_x_forwarded_for\" [$time_local] $status'",
        f'10.0.0.1 "203.0.113.7, 10.0.0.9" {TS} 200',
        {"client_ip": "203.0.113.7"},
    ),
    (
        "absent $http_x_forwarded_for",
        "'$remote_addr \"$http_x_forwarded_for\" [$time_local] $status'",
        f'10.0.0.1 "-" {TS} 200',
        {"client_ip": "10.0.0.1"},
    ),
]


@pytest.mark.parametrize(("directive", "line", "expected"), [c[1:] for c in NGINX_CASES],
                         ids=[c[0] for c in NGINX_CASES])  # fmt: skip
def test_nginx_format(directive: str, line: str, expected: dict[str, Any]) -> None:
    row = one_with(nginx.nginx_format(directive), line)
    assert "reject" not in row, row
    assert {k: row.get(k) for k in expected} == expected


def test_nginx_format_rejects_other_lines() -> None:
    fmt = nginx.nginx_format(NGINX_UPSTREAMINFO)
    assert one_with(fmt, "garbage") == {"reject": "does not match the nginx log_format"}


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        ("log_format x '$remote_addr [$time_local] \"$request\"';", "has no $status variable"),
        ("log_format x '$remote_addr \"$request\" $status';", "has no $time_local"),
        ("log_format x escape=xml '$msec $status';", "escape=xml is not one of"),
        ("main", "paste the whole `log_format main '...'` directive"),
    ],
)
def test_nginx_format_errors(directive: str, message: str) -> None:
    with pytest.raises(UnknownFormatError, match=re.escape(message)) as caught:
        nginx.nginx_format(directive)
    assert "\n" not in str(caught.value)


# --- HAProxy -------------------------------------------------------------------------------------

HAPROXY_HTTP = (
    "10.0.0.1:5000 [05/Oct/2025:12:00:00.123] fe be/s1 0/0/1/2/3 409 100 - - ---- 1/1/0/0/0 0/0 "
    '"PUT /orders/1 HTTP/1.1"'
)

HAPROXY_CASES = [
    ("no prefix", HAPROXY_HTTP, {"ts": "2025-10-05T12:00:00.123000+00:00", "status": 409}),
    ("RFC 3164 with priority", "<134>Oct  5 12:00:00 lb1 haproxy[123]: " + HAPROXY_HTTP,
     {"ts": "2025-10-05T12:00:00.123000+00:00"}),
    ("RFC 3164 without priority", "Oct  5 12:00:00 lb1 haproxy[123]: " + HAPROXY_HTTP,
     {"ts": "2025-10-05T12:00:00.123000+00:00", "client_ip": "10.0.0.1"}),
    ("RFC 5424 gives the offset", "<134>1 2025-10-05T12:00:00.123+02:00 lb1 haproxy 123 - - "
     + HAPROXY_HTTP, {"ts": "2025-10-05T10:00:00.123000+00:00"}),
    ("rsyslog RFC 3339 stamp gives the offset",
     "2025-10-05T12:00:00.123456-04:00 lb1 haproxy[123]: " + HAPROXY_HTTP,
     {"ts": "2025-10-05T16:00:00.123000+00:00"}),
    ("fields", HAPROXY_HTTP, {"client_ip": "10.0.0.1", "method": "PUT", "path": "/orders/1",
                              "bytes": 100, "duration_ms": 3.0}),
    ("IPv6 client, logasap +, captured Host header",
     '2001:db8::1:5000 [05/Oct/2025:12:00:00.000] fe~ be/s1 0/0/1/2/+30 200 +100 - - ---- '
     '1/1/0/0/0 0/0 {api.example.com|curl/8} {} "GET /a?b=1 HTTP/1.1"',
     {"client_ip": "2001:db8::1", "host": "api.example.com", "duration_ms": 30.0,
      "bytes": 100, "query": "b=1"}),
    ("captured header that is not a host",
     '1.2.3.4:1 [05/Oct/2025:12:00:00.000] fe be/s 0/0/1/2/3 200 1 - - ---- 1/1/0/0/0 0/0 '
     '{Mozilla/5.0 (X11)} {} "GET / HTTP/1.1"', {"host": None}),
    ("unknown client, custom field after the server",
     '-:22222 [22/May/2021:02:22:22.222] www~ app/node2 site.example.com 0/0/0/18/18 200 200 '
     '- - ---- 222/222/2/0/0 0/0 "OPTIONS /api/v2/app/ HTTP/1.1"',
     {"client_ip": None, "method": "OPTIONS", "duration_ms": 18.0}),
    ("RFC 5424 structured data", '<134>1 2025-10-05T12:00:00.123+02:00 lb1 haproxy 123 - '
     '[meta seq="1"] ' + HAPROXY_HTTP, {"ts": "2025-10-05T10:00:00.123000+00:00", "status": 409}),
    ("bad request", '1.2.3.4:1 [05/Oct/2025:12:00:00.000] fe be/<NOSRV> -1/-1/-1/-1/0 400 187 '
     '- - PR-- 1/1/0/0/0 0/0 "<BADREQ>"', {"status": 400, "method": None}),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in HAPROXY_CASES],
                         ids=[c[0] for c in HAPROXY_CASES])  # fmt: skip
def test_haproxy(line: str, expected: dict[str, Any]) -> None:
    row = one("haproxy", line)
    assert "reject" not in row, row
    assert {k: row.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    "line",
    [
        "Feb 25 16:19:38 192.168.4.2 haproxy[1]: Proxy prod_http_in started.",
        "Proxy stats started.",
        "[NOTICE]   (1) : New worker (8) forked",
        "Feb 25 16:20:15 h haproxy[7]: 95.216.197.33:56224 [25/Feb/2019:16:20:10.111] "
        "prod_http_in/sktst2: SSL handshake failure",
        "192.168.1.4:50033 [28/Feb/2025:02:43:10.123] frontend/backend: SSL handshake failure",
        "Oct  5 12:00:00 lb1 haproxy[1]: 10.0.0.1:5000 [05/Oct/2025:12:00:00.789] fe be/s1 "
        "0/0/5 300 -- 1/1/0/0/0 0/0",
        "<133>1 2025-10-05T12:00:00Z lb1 haproxy 1 - - Server be/s1 is DOWN",
    ],
    ids=["startup", "startup bare", "notice", "ssl syslog", "ssl bare", "tcp mode", "rfc5424"],
)
def test_haproxy_skips_non_http_lines(line: str) -> None:
    assert one("haproxy", line) == {"skip": True}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (HAPROXY_HTTP.replace(" 409 ", " -1 "), "no valid status"),
        (HAPROXY_HTTP[:80], "not a haproxy HTTP line"),
        ("random text", "not a haproxy HTTP line"),
        (f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "x"', "not a haproxy HTTP line"),
    ],
    ids=["aborted, status -1", "truncated", "garbage", "combined line"],
)
def test_haproxy_rejects(line: str, reason: str) -> None:
    assert one("haproxy", line) == {"reject": reason}


# --- Envoy text ----------------------------------------------------------------------------------

ENVOY_DEFAULT = (
    '[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 '
    '"10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" '
    '"tcp://10.0.2.1:80"'
)
ENVOY_ISTIO = (
    '[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 '
    '"-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" '
    '"127.0.0.1:80" inbound|8000|| 127.0.0.1:41854 10.44.1.27:80 10.44.1.23:37652 '
    "outbound_.8000_._.httpbin.default.svc.cluster.local default"
)


def test_envoy_default_format() -> None:
    assert one("envoy-text", ENVOY_DEFAULT) == {
        "ts": "2016-04-15T20:17:00.310000+00:00",
        "host": "locations",
        "client_ip": "10.0.35.28",
        "user_agent": "nsq2http",
        "method": "POST",
        "path": "/api/v1/locations",
        "status": 204,
        "bytes": 0,
        "duration_ms": 226.0,
        "request_id": "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
    }


def test_envoy_istio_fields_tolerated() -> None:
    row = one("envoy-text", ENVOY_ISTIO)
    assert row["client_ip"] == "10.44.1.23"  # DOWNSTREAM_REMOTE_ADDRESS, no X-Forwarded-For
    assert (row["status"], row["bytes"], row["duration_ms"]) == (418, 135, 4.0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('[2024-01-02T03:04:06.000Z] "- - -" 0 - 0 0 1 - "-" "-" "-" "-" "10.0.0.1:5432"',
         {"skip": True}),
        ("[2020-11-25 21:26:18.409][15][info][main] [source/server/server.cc:500] starting",
         {"skip": True}),
        ("2020-11-25T21:26:18.409Z\tinfo\tEnvoy proxy is ready", {"skip": True}),
        ('[2024-01-02T03:04:06.000Z] "GET / HTTP/1.1" 0 DC 0 0 1 - "-" "-" "-" "-" "-"',
         {"reject": "no valid status"}),
        ("garbage", {"reject": "not an envoy access line"}),
    ],
    ids=["tcp session", "envoy diagnostics", "istio agent", "no response", "garbage"],
)  # fmt: skip
def test_envoy_other_lines(line: str, expected: dict[str, Any]) -> None:
    assert one("envoy-text", line) == expected


# --- Nginx Proxy Manager -------------------------------------------------------------------------


def test_npm_builtin_is_built_from_the_shipped_directives() -> None:
    assert nginx.nginx_format(nginx.NPM_PROXY).name == "nginx:proxy"
    assert nginx.nginx_format(nginx.NPM_STANDARD).name == "nginx:standard"


def test_npm_keeps_the_reason_of_a_line_with_its_shape() -> None:
    line = (
        '[31/Feb/2022:16:51:02 +0000] - 404 404 - GET http a.local "/x" [Client 1.2.3.4] '
        '[Length 1] [Gzip -] [Sent-to a] "curl/8" "-"'
    )
    assert rows(parse("nginx-proxy-manager", [line, "junk"])) == [
        {"reject": "no valid timestamp"},
        {"reject": "not a Nginx Proxy Manager line"},
    ]


# --- bad input -----------------------------------------------------------------------------------

BAD_LINES = [
    "".join(chr(c) for c in range(256)) * 4,  # binary garbage, decoded byte by byte
    '192.0.2.1 - - [05/Oct/2025:12:00:00 +0000] "GET /trunc',  # truncated
    "A" * 1_000_000,  # a 1 MB line
    "\ufffd\ufffd\x00\ufffd garbage \ufffd",  # invalid UTF-8 after decoding
    '"""""""',
    '[[[[ ]]]] " \\ \\\\ \\"',
]


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_bad_lines_are_rejected_never_raised(spec: str) -> None:
    frame = parse(spec, BAD_LINES)
    assert frame.height == len(BAD_LINES)
    assert frame["_reject"].is_not_null().all(), rows(frame)


def test_one_megabyte_valid_line_parses() -> None:
    agent = "x" * 1_000_000
    row = one("combined", f'192.0.2.1 - - {TS} "GET / HTTP/1.1" 200 5 "-" "{agent}"')
    assert row["user_agent"] == agent


# --- golden files --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name: str) -> None:
    lines = read_lines(GOLDEN_TEXT / f"{name}.log")
    actual = rows(parse(GOLDEN[name], lines))
    expected_path = GOLDEN_TEXT / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(expected_path.read_text())
    assert len(actual) == len(lines)
    assert actual == expected


# --- real logs -----------------------------------------------------------------------------------

# (file under real_logs, format, (parsed, rejected, skipped)) -- every count checked by hand.
REAL_LOGS = [
    ("elastic-examples/apache_logs", "combined", (10_000, 0, 0)),
    ("lnav-tests/logfile_shop_access_log.0", "combined", (1000, 0, 0)),
    ("lnav-tests/logfile_access_log.0", "combined", (3, 0, 0)),
    ("beats-fixtures/nginx_access.log", "combined", (13, 0, 0)),
    ("beats-fixtures/nginx_test_edgecases.log", "combined", (7, 0, 0)),
    ("beats-fixtures/apache_access_test.log", "combined", (7, 0, 0)),
    ("beats-fixtures/traefik_v1_access.log", "combined", (2, 0, 0)),
    # 2 Apache error-log lines.
    ("crowdsec-hub-tests/apache2-logs__apache2-logs.log", "combined", (7, 2, 0)),
    ("crowdsec-hub-tests/apache2-logs__apache2-logs.log", "vcombined", (2, 7, 0)),
    # 1 nginx error-log line.
    ("crowdsec-hub-tests/nginx_http-logs__nginx_http-logs.log", "combined", (8, 1, 0)),
    # 1 line with `-` for status and bytes; 2 blank lines at the end.
    ("crowdsec-hub-tests/traefik_clf__traefik_clf.log", "combined", (6, 1, 2)),
    # 11 NPM lines (proxy and standard) plus 1 combined line; 2 nginx error-log lines.
    (
        "crowdsec-hub-tests/nginx-proxy-manager-logs__nginx-proxy-manager-logs.log",
        "nginx-proxy-manager",
        (12, 2, 0),
    ),
    # 3 "Proxy ... started" lines and 1 SSL handshake failure are skipped.
    ("lnav-tests/logfile_haproxy.0", "haproxy", (13, 0, 4)),
    ("beats-fixtures/haproxy_http.log", "haproxy", (10, 0, 0)),
    # 3 SSL/heartbeat lines are skipped.
    ("crowdsec-hub-tests/haproxy-logs__haproxy-logs.log", "haproxy", (2, 0, 3)),
]


@pytest.mark.parametrize(("relpath", "spec", "expected"), REAL_LOGS,
                         ids=[f"{r[0]}-{r[1]}" for r in REAL_LOGS])  # fmt: skip
def test_real_logs(
    real_logs: Path, relpath: str, spec: str, expected: tuple[int, int, int]
) -> None:
    frame = parse(spec, read_lines(real_logs / relpath))
    assert counts(frame) == expected
    parsed = frame.filter(pl.col("_reject").is_null() & ~pl.col("_skip"))
    assert parsed["ts"].is_not_null().all() and parsed["status"].is_not_null().all()


def test_apache_logs_fields(real_logs: Path) -> None:
    frame = parse("combined", read_lines(real_logs / "elastic-examples/apache_logs"))
    first = rows(frame.head(1))[0]
    assert first == {
        "ts": "2015-05-17T10:05:03+00:00",
        "client_ip": "83.149.9.216",
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36",
        "method": "GET",
        "path": "/presentations/logstash-monitorama-2013/images/kibana-search.png",
        "status": 200,
        "bytes": 203023,
    }
    assert frame["client_ip"].is_not_null().all()
    assert frame["method"].is_not_null().all()


# A well-formed line of the erddap logs, checked independently of the parser.
_ERDDAP_LINE = re.compile(
    r'^\S+ - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "[A-Z]+ \S+ HTTP/1\.[01]" \d{3} \d+ '
    r'"[^"]*" "[^"]*"( "[^"]*")?$'
)


def test_erddap_fragments_rejected_every_good_line_parsed(real_logs: Path) -> None:
    lines: list[str] = []
    for path in sorted((real_logs / "erddaplogs-voto").glob("tomcat-access.log.*")):
        lines.extend(read_lines(path))
    assert len(lines) == 16_275
    frame = parse("combined", lines)
    good = [bool(_ERDDAP_LINE.match(line)) for line in lines]
    fragment = [bool(re.fullmatch(r' "[^"]*"', line)) for line in lines]
    assert sum(good) == 10_479 and sum(fragment) == 5_796
    assert all(g != f for g, f in zip(good, fragment, strict=True))  # nothing in between
    assert (frame["_reject"].is_null() & ~frame["_skip"]).to_list() == good
    assert frame.filter(pl.Series(fragment))["_reject"].unique().to_list() == [
        "not a combined line"
    ]


def test_shop_log_percent_encoded_paths(real_logs: Path) -> None:
    frame = parse("combined", read_lines(real_logs / "lnav-tests/logfile_shop_access_log.0"))
    assert frame["path"][0].startswith("/filter/27|13%20%D9%85%DA%AF")
    assert (
        frame["user_agent"][0]
        == "Mozilla/5.0 (compatible; AhrefsBot/6.1; +http://ahrefs.com/robot/)"
    )
    assert frame["ts"][0].isoformat() == "2019-01-22T00:26:14+00:00"  # +0330
