"""JSON formats (ingest/formats/json*.py) and container envelopes (ingest/envelopes.py).

Tables of single lines per format, golden files (tests/golden/json/<format>.log -> .json;
regenerate with UPDATE_GOLDEN=1 after checking the diff by eye), the real logs in
../shared/real_logs with exact counts, envelopes, and bad lines.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conflictradar.ingest import envelopes, schema
from conflictradar.ingest.formats import ParserState, jsonlog, jsonpaths
from tests.conftest import GOLDEN
from tests.kit import counts, read_lines, records

FORMATS = {f.name: f for f in jsonlog.FORMATS}
GOLDEN_DIR = GOLDEN / "json"


def parse(fmt: str, lines: Sequence[str | None]) -> pl.DataFrame:
    return FORMATS[fmt].parse(pl.Series(lines, dtype=pl.String), ParserState())


def one(fmt: str, line: str) -> dict[str, Any]:
    return records(parse(fmt, [line]))[0]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_formats_are_registered_most_specific_first() -> None:
    assert list(FORMATS) == ["apigw", "kong", "traefik", "caddy", "envoy", "ecs", "otel", "json"]


# --- one line per case ------------------------------------------------------------------------

KONG = (
    '{"request":{"method":"PUT","uri":"/orders/42?x=1","headers":{"host":"api.example.com",'
    '"user-agent":%s}},"response":{"status":%s,"size":150},"latencies":{"request":35},'
    '"client_ip":"198.51.100.23","started_at":1760104536123%s}'
)
TRAEFIK = (
    '{"ClientAddr":"10.0.0.1:5000","ClientHost":%s,"DownstreamStatus":409,"Duration":2500000,'
    '"OriginStatus":%s,"RequestHost":"api.example.com","RequestMethod":"DELETE",'
    '"RequestPath":"/orders/7","StartUTC":%s,"level":"info","msg":"","time":"2025-10-10T13:55:36Z"}'
)
CADDY = (
    '{"level":"info","ts":%s,"logger":"http.log.access","msg":"handled request","request":{%s'
    '"method":"POST","host":"api.example.com","uri":"/orders","headers":{"User-Agent":["curl/8"]}},'
    '"duration":%s,"size":12,"status":%s%s}'
)

CASES = [
    # apigw: AWS's documented variable names
    pytest.param(
        "apigw",
        '{"requestId":"r1","ip":"203.0.113.7","requestTime":"10/Oct/2025:15:55:36 +0200",'
        '"httpMethod":"POST","routeKey":"POST /orders/{id}/cancel","path":"/orders/8/cancel",'
        '"status":"409","responseLength":"112","integrationStatus":"200","responseLatency":"45",'
        '"domainName":"api.example.com","userAgent":"curl/8"}',
        {
            "ts": "2025-10-10T13:55:36.000000Z",
            "client_ip": "203.0.113.7",
            "method": "POST",
            "path": "/orders/8/cancel",
            "route": "/orders/{id}/cancel",
            "status": 409,
            "upstream_status": 200,
            "bytes": 112,
            "duration_ms": 45.0,
            "host": "api.example.com",
            "user_agent": "curl/8",
            "request_id": "r1",
        },
        id="apigw-http-api-string-values-clf-offset",
    ),
    pytest.param(
        "apigw",
        '{"requestId":"r2","ip":"1.2.3.4","requestTimeEpoch":1760104536123,"httpMethod":"PUT",'
        '"resourcePath":"/orders/{id}","path":"/prod/orders/42","status":409,"responseLength":87}',
        {
            "ts": "2025-10-10T13:55:36.123000Z",
            "status": 409,
            "bytes": 87,
            "route": "/orders/{id}",
            "path": "/prod/orders/42",
        },
        id="apigw-rest-numeric-values-epoch-ms",
    ),
    pytest.param(
        "apigw",
        '{"requestId":"r3","sourceIp":"1.2.3.4","requestTimeEpoch":"1760104536",'
        '"routeKey":"DELETE /carts/{id}","status":"409","responseLength":"-",'
        '"integrationStatus":"-","errorMessage":"-","error":{"message":"cart is locked"},'
        '"message":"Conflict"}',
        {
            "ts": "2025-10-10T13:55:36.000000Z",
            "method": "DELETE",
            "path": None,
            "route": "/carts/{id}",
            "bytes": None,
            "upstream_status": None,
            "message": "cart is locked",
        },
        id="apigw-epoch-s-method-from-routekey-dash-absent-nested-error-wins",
    ),
    pytest.param(
        "apigw",
        '{"requestId":"r4","ip":"1.2.3.4","requestTime":"10/Oct/2025:13:55:36 +0000",'
        '"httpMethod":"GET","routeKey":"$default","path":"/x","status":"200",'
        '"integration.status":"200","error.message":"dotted error"}',
        {"route": None, "upstream_status": 200, "message": "dotted error"},
        id="apigw-default-route-dotted-keys",
    ),
    pytest.param(
        "apigw",
        '{"requestId":"r5","ip":"1.2.3.4","requestTime":"10/Oct/2025:13:55:36 +0000",'
        '"httpMethod":"GET","routeKey":"ANY /{proxy+}","path":"/a","status":"200",'
        '"integration":{"status":"503"},"errorMessage":"Internal server error",'
        '"message":"generic"}',
        {"route": "/{proxy+}", "upstream_status": 503, "message": "Internal server error"},
        id="apigw-nested-integration-errormessage-wins",
    ),
    # kong
    pytest.param(
        "kong",
        KONG % ('"okhttp/4"', "409", ',"upstream_status":"502, 409"'),
        {
            "ts": "2025-10-10T13:55:36.123000Z",
            "method": "PUT",
            "path": "/orders/42",
            "query": "x=1",
            "host": "api.example.com",
            "user_agent": "okhttp/4",
            "status": 409,
            "upstream_status": 409,
            "bytes": 150,
            "duration_ms": 35.0,
            "client_ip": "198.51.100.23",
        },
        id="kong-upstream-status-after-retry",
    ),
    pytest.param(
        "kong",
        KONG % ('["curl/8", "second"]', '"409"', ',"source":"upstream"'),
        {"user_agent": "curl/8", "status": 409, "upstream_status": 409},
        id="kong-header-list-string-status-source-upstream",
    ),
    pytest.param(
        "kong",
        KONG % ('"x"', "409", ',"source":"kong","route":{"paths":["/orders"]}'),
        {"upstream_status": None, "route": None},
        id="kong-answered-itself-prefix-route-is-no-template",
    ),
    pytest.param(
        "kong",
        KONG % ('"x"', "409", ',"route":{"paths":["~/orders/(?<id>\\\\d+)$"]}'),
        {"route": "/orders/{id}"},
        id="kong-regex-route-becomes-template",
    ),
    pytest.param(
        "kong",
        KONG.replace('"host":', '"kong-request-id":"k-1","host":', 1) % ('"x"', "409", ""),
        {"request_id": "k-1"},
        id="kong-request-id-header",
    ),
    # traefik
    pytest.param(
        "traefik",
        TRAEFIK % ('"192.168.1.100,10.0.0.50"', "409", '"2025-10-10T13:55:36.123456789Z"'),
        {
            "client_ip": "192.168.1.100",
            "upstream_status": 409,
            "duration_ms": 2.5,
            "ts": "2025-10-10T13:55:36.123456Z",
            "method": "DELETE",
            "status": 409,
        },
        id="traefik-client-list-ns-duration",
    ),
    pytest.param(
        "traefik",
        (TRAEFIK % ('"-"', "0", '"-"')).replace(
            '"level"', '"StartLocal":"2025-10-10T15:55:36.5+02:00","level"'
        ),
        {"client_ip": "10.0.0.1", "upstream_status": None, "ts": "2025-10-10T13:55:36.500000Z"},
        id="traefik-origin-0-is-no-upstream-startlocal-offset",
    ),
    # caddy
    pytest.param(
        "caddy",
        CADDY
        % (
            "1761019828.6153953",
            '"remote_ip":"10.0.0.1","client_ip":"203.0.113.4",',
            "0.0125",
            "409",
            "",
        ),
        {
            "ts": "2025-10-21T04:10:28.615395Z",
            "client_ip": "203.0.113.4",
            "user_agent": "curl/8",
            "duration_ms": 12.5,
            "status": 409,
            "message": None,
        },
        id="caddy-epoch-float-client-ip-wins-msg-is-no-reason",
    ),
    pytest.param(
        "caddy",
        CADDY
        % (
            '"2025-10-10T13:55:36.25-04:00"',
            '"remote_addr":"10.0.0.1:5555",',
            '"1.5ms"',
            '"409"',
            ',"error":"already exists"',
        ),
        {
            "ts": "2025-10-10T17:55:36.250000Z",
            "client_ip": "10.0.0.1",
            "duration_ms": 1.5,
            "status": 409,
            "message": "already exists",
        },
        id="caddy-iso-ts-old-remote-addr-go-duration-error",
    ),
    # envoy
    pytest.param(
        "envoy",
        '{"start_time":"2025-10-10T13:55:36.120Z","method":"POST","path":"/o/1?a=b",'
        '"x-envoy-origin-path":"/orders/1?a=b","response_code":"409","bytes_sent":7,"duration":14,'
        '"x_forwarded_for":"203.0.113.8, 10.0.0.1","user_agent":"ua","request_id":"r",'
        '"authority":"api.example.com","response_code_details":"via_upstream"}',
        {
            "path": "/orders/1",
            "query": "a=b",
            "status": 409,
            "upstream_status": 409,
            "client_ip": "203.0.113.8",
            "duration_ms": 14.0,
            "host": "api.example.com",
        },
        id="envoy-original-path-wins-via-upstream",
    ),
    pytest.param(
        "envoy",
        '{"start_time":"2025-10-10T13:55:36Z",":method":"PUT",":path":"/a",":authority":"h",'
        '"response_code":409,"response_code_details":"ext_authz_denied",'
        '"downstream_remote_address":"[2001:db8::9]:51000","x-request-id":"q"}',
        {
            "method": "PUT",
            "path": "/a",
            "host": "h",
            "client_ip": "2001:db8::9",
            "upstream_status": 0,  # no upstream reached: the gateway answered (SPEC 5, rule 1)
            "request_id": "q",
        },
        id="envoy-pseudo-headers-ipv6-gateway-answered",
    ),
    # ecs
    pytest.param(
        "ecs",
        '{"@timestamp":"2025-10-10T15:55:36.123+02:00","http":{"request":{"method":"PUT"},'
        '"response":{"status_code":409,"body":{"bytes":87}}},"url":{"path":"/orders/42",'
        '"query":"v=3","domain":"api.example.com"},"source":{"ip":"192.0.2.10"},'
        '"event":{"duration":12500000},"error":{"message":"version mismatch"},"message":"m"}',
        {
            "ts": "2025-10-10T13:55:36.123000Z",
            "method": "PUT",
            "status": 409,
            "bytes": 87,
            "query": "v=3",
            "duration_ms": 12.5,
            "message": "version mismatch",
            "host": "api.example.com",
        },
        id="ecs-nested",
    ),
    pytest.param(
        "ecs",
        '{"@timestamp":"2025-10-10T13:55:36Z","http.request.method":"POST",'
        '"http.response.status_code":"409","url.original":"/orders?dry=1","client.ip":"192.0.2.11",'
        '"user_agent.original":"curl/8","trace.id":"t1","error.message":"duplicate key"}',
        {
            "method": "POST",
            "status": 409,
            "path": "/orders",
            "query": "dry=1",
            "client_ip": "192.0.2.11",
            "user_agent": "curl/8",
            "request_id": "t1",
            "message": "duplicate key",
        },
        id="ecs-dotted",
    ),
    pytest.param(
        "ecs",
        '{"@timestamp":"2025-10-10T13:55:36Z","http":{"request.method":"DELETE",'
        '"response":{"status_code":204}},"url.full":"https://h/orders/9","host":{"name":"web-1"}}',
        {"method": "DELETE", "status": 204, "path": "/orders/9", "host": "web-1"},
        id="ecs-mixed",
    ),
    # otel
    pytest.param(
        "otel",
        '{"timestamp":"2025-10-10T11:55:36.5Z","body":"done","attributes":{"http.request.method":'
        '"POST","url.path":"/orders","http.route":"/orders","http.response.status_code":409,'
        '"client.address":"10.1.2.3","exception.message":"order exists"}}',
        {
            "method": "POST",
            "route": "/orders",
            "status": 409,
            "client_ip": "10.1.2.3",
            "message": "order exists",
            "ts": "2025-10-10T11:55:36.500000Z",
        },
        id="otel-flat-attributes",
    ),
    pytest.param(
        "otel",
        '{"timeUnixNano":"0","observedTimeUnixNano":"1760097337000000000","body":{"stringValue":'
        '"GET /healthz 200"},"attributes":{"http.method":"GET","http.target":"/healthz?x=1",'
        '"http.status_code":"200","net.peer.ip":"10.1.2.4","http.user_agent":"kube-probe"}}',
        {
            "method": "GET",
            "path": "/healthz",
            "query": "x=1",
            "status": 200,
            "client_ip": "10.1.2.4",
            "ts": "2025-10-10T11:55:37.000000Z",
            "message": None,
        },
        id="otel-old-names-unset-time-body-restating-request",
    ),
    pytest.param(
        "otel",
        '{"startTimeUnixNano":"1760097336000000000","endTimeUnixNano":"1760097336045000000",'
        '"attributes":[{"key":"http.request.method","value":{"stringValue":"PATCH"}},'
        '{"key":"http.response.status_code","value":{"intValue":409}},'
        '{"key":"url.full","value":{"stringValue":"https://h/orders/42?v=1"}}]}',
        {
            "method": "PATCH",
            "status": 409,
            "path": "/orders/42",
            "query": "v=1",
            "duration_ms": 45.0,
        },
        id="otel-otlp-list-attributes-span",
    ),
    # json
    pytest.param(
        "json",
        '{"time":"2025-10-10T13:55:36+02:00","remote_addr":"203.0.113.9","request":'
        '"POST /orders?src=web HTTP/1.1","status":"409","body_bytes_sent":"64",'
        '"request_time":"0.012","http_user_agent":"py","host":"h","request_id":"abc",'
        '"upstream_status":"409"}',
        {
            "ts": "2025-10-10T11:55:36.000000Z",
            "method": "POST",
            "path": "/orders",
            "query": "src=web",
            "status": 409,
            "bytes": 64,
            "duration_ms": 12.0,
            "upstream_status": 409,
        },
        id="json-nginx-style-request-line",
    ),
    pytest.param(
        "json",
        '{"ts":1760104536.5,"level":"info","method":"DELETE","path":"/o/9","status_code":409,'
        '"duration_ms":3.5,"client_ip":"10.0.0.9","error":"already shipped","msg":"failed"}',
        {"duration_ms": 3.5, "message": "already shipped", "ts": "2025-10-10T13:55:36.500000Z"},
        id="json-error-wins-over-msg",
    ),
    pytest.param(
        "json",
        '{"time":0.004,"timestamp":"2025-10-10T13:55:36Z","verb":"PUT","uri":"/u/3",'
        '"code":409,"latency":"250µs","error":false,"message":"PUT /u/3 409"}',
        {
            "ts": "2025-10-10T13:55:36.000000Z",
            "method": "PUT",
            "status": 409,
            "duration_ms": 0.25,
            "message": None,
        },
        id="json-bad-time-falls-through-go-duration-boolean-error-restating-message",
    ),
    pytest.param(
        "json",
        '{"@timestamp":"2025-10-10T13:55:36Z","method":"GET","url":"https://h/i?p=2",'
        '"status":200,"duration":0.25,"x_forwarded_for":"198.51.100.1, 10.0.0.1",'
        '"error":{"message":"nested"}}',
        {
            "path": "/i",
            "query": "p=2",
            "duration_ms": 250.0,
            "client_ip": "198.51.100.1",
            "message": "nested",
        },
        id="json-absolute-url-fraction-is-seconds-error-object",
    ),
    pytest.param(
        "json",
        '{"timestamp":"2025-10-10T13:55:36Z","method":"GET","path":"/x","status":200,'
        '"duration":12,"reason":"-","message":""}',
        {"duration_ms": 12.0, "message": None},
        id="json-integer-duration-is-ms-dash-and-empty-are-absent",
    ),
    pytest.param(
        "json",
        '{"date":"2025-10-10 13:55:36","request_uri":"/a?b=1","code":"409","bytes":"10"}',
        {"status": 409, "path": "/a", "query": "b=1", "method": None, "bytes": 10},
        id="json-code-counts-next-to-a-target-space-separated-iso",
    ),
]


@pytest.mark.parametrize(("fmt", "line", "expected"), CASES)
def test_line(fmt: str, line: str, expected: dict[str, Any]) -> None:
    row = one(fmt, line)
    assert row["_reject"] is None and row["_skip"] is False, row
    assert {key: row[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("fmt", "line", "reason"),
    [
        (
            "json",
            '{"timestamp":"2025-10-10T13:55:36Z","method":"GET","code":42}',
            "no valid status",
        ),
        (
            "ecs",
            '{"@timestamp":"2025-10-10T13:55:36Z","http":{"request":{"method":"GET"}}}',
            "no valid status",
        ),
        ("apigw", '{"requestId":"r","httpMethod":"GET","status":"409"}', "no valid timestamp"),
        (
            "apigw",
            '{"method":"GET","status":409,"time":"2025-10-10T13:55:36Z"}',
            "not an apigw record",
        ),
        ("kong", '{"requestId":"r","httpMethod":"GET","status":"409"}', "not a kong record"),
        (
            "traefik",
            '{"request":{"method":"GET"},"response":{"status":409}}',
            "not a traefik record",
        ),
        ("caddy", '{"RequestMethod":"GET","DownstreamStatus":409}', "not a caddy record"),
        ("envoy", '{"http.request.method":"GET"}', "not an envoy record"),
        ("ecs", '{"method":"GET","status":409}', "not an ecs record"),
        (
            "otel",
            '{"http.request.method":"GET","http.response.status_code":409}',
            "not an otel record",
        ),
        ("json", '{"event":"cache_refresh","items":12}', "not a json record"),
        (
            "json",
            '{"time":"2025-10-10T13:55:36Z","msg":"health","status":200}',
            "not a json record",
        ),
        ("json", '{"time":"2025-10-10T13:55:36Z","code":409}', "not a json record"),
    ],
)
def test_reject_reason(fmt: str, line: str, reason: str) -> None:
    assert one(fmt, line)["_reject"] == reason


APP_LINES = [
    '{"level":"info","msg":"server started","ts":1761019822.3}',
    '{"log.level":"warn","message":"pool exhausted","@timestamp":"2025-10-10T13:55:36Z"}',
    "DEBUG: CrowdsecBouncerTraefikPlugin: 2025/09/05 13:53:40 handleStreamCache:updated",
    'time="2025-10-10T13:55:36Z" level=info msg="Configuration loaded"',
    "",
    "   ",
]


@pytest.mark.parametrize(
    ("fmt", "line"),
    # envoy hands text lines to its text-format parser (ingest/formats/proxies.py).
    [(f, line) for f in FORMATS for line in APP_LINES if f != "envoy" or line.startswith("{")],
)
def test_application_lines_are_skipped(fmt: str, line: str) -> None:
    row = one(fmt, line)
    assert row["_skip"] is True and row["_reject"] is None


# --- golden files -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_golden(fmt: str) -> None:
    source = GOLDEN_DIR / f"{fmt}.log"
    expected_file = GOLDEN_DIR / f"{fmt}.json"
    got = records(parse(fmt, read_lines(source)))
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(expected_file.read_text())


# --- real logs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "envelope", "expected"),
    [
        ("traefik", "crowdsec-hub-tests/traefik_json__traefik_json.log", None, (6, 1, 0)),
        (
            "traefik",
            "crowdsec-hub-tests/traefik_base-http-scenario__traefik_base-http-scenario.log",
            None,
            (80, 0, 0),
        ),
        # 10 access lines, a reverse_proxy debug line, a trailing blank line.
        ("caddy", "crowdsec-hub-tests/caddy-logs__caddy-logs.log", None, (10, 2, 0)),
        ("caddy", "lnav-tests/logfile_caddy_log.1", None, (4, 0, 0)),
        # docker-compose output: 35 start-up/shutdown lines around 4 access lines.
        ("caddy", "lnav-tests/logfile_caddy_log.0", "compose", (4, 35, 0)),
        # CRI: 6 JSON lines and 4 in envoy's default text format.
        ("envoy", "crowdsec-hub-tests/envoy-logs__envoy.log", "cri", (10, 0, 0)),
        # Docker json-file (with a stray `}`): one request and one TCP session (`"- - -"`).
        ("envoy", "beats-fixtures/envoy-json.log", "docker", (1, 1, 0)),
    ],
)
def test_real_logs(
    real_logs: Path, fmt: str, name: str, envelope: str | None, expected: tuple[int, int, int]
) -> None:
    lines = pl.Series(read_lines(real_logs / name), dtype=pl.String)
    assert envelopes.detect_envelope(lines) == envelope
    if envelope:
        lines = envelopes.unwrap(envelope, lines, final=True).frame["text"]
    frame = FORMATS[fmt].parse(lines, ParserState())
    assert counts(frame) == expected
    ok = frame.filter(pl.col("_reject").is_null() & ~pl.col("_skip"))
    assert ok["ts"].null_count() == 0 and ok["method"].null_count() == 0
    assert ok["path"].str.starts_with("/").all()


def test_real_traefik_values(real_logs: Path) -> None:
    lines = read_lines(real_logs / "crowdsec-hub-tests/traefik_json__traefik_json.log")
    rows = records(parse("traefik", lines))
    assert rows[4]["ts"] == "2026-01-14T09:45:33.759014Z"  # StartLocal was +01:00
    assert rows[4]["upstream_status"] is None  # OriginStatus 0: traefik answered itself
    assert rows[6]["client_ip"] == "192.168.1.100"  # ClientHost "192.168.1.100,10.0.0.50"
    assert rows[0]["duration_ms"] == pytest.approx(0.357313)


def test_real_envoy_values(real_logs: Path) -> None:
    lines = pl.Series(read_lines(real_logs / "crowdsec-hub-tests/envoy-logs__envoy.log"))
    unwrapped = envelopes.unwrap("cri", lines, final=True).frame
    rows = records(parse("envoy", unwrapped["text"].to_list()))
    assert [r["request_id"] for r in rows][5:8] == [
        "6d6e08ba-02a3-4a26-968a-2183aa33a56d",
        "multi-ip-v4-test-id",
        "multi-ip-v6-test-id",
    ]
    assert rows[6]["client_ip"] == "192.168.1.100"
    assert rows[7]["client_ip"] == "fd00:1234:5678::5a24"
    assert unwrapped["envelope_ts"][0] == utc("2025-12-31T17:37:40.493035+01:00")


# --- envoy: JSON and text lines in one stream -------------------------------------------------

ENVOY_JSON = (
    '{"start_time":"2025-10-10T13:55:36Z","method":"GET","path":"/j%d","response_code":200}'
)
ENVOY_TEXT = (
    '[2025-10-10T13:55:37.000Z] "GET /t%d HTTP/1.1" 409 - 0 5 3 2 "1.2.3.4" "ua" "id" "h" "up"'
)


def test_envoy_mixed_stream_stays_row_aligned() -> None:
    lines = [ENVOY_JSON % 1, ENVOY_TEXT % 2, ENVOY_TEXT % 3, ENVOY_JSON % 4, "garbage"]
    frame = parse("envoy", lines)
    assert frame.columns == list(schema.empty().columns)
    assert frame["path"].to_list() == ["/j1", "/t2", "/t3", "/j4", None]
    assert frame["_reject"][4] is not None


def test_envoy_without_text_parser_rejects_text_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "conflictradar.ingest.formats.proxies", None
    )  # import now fails
    frame = parse("envoy", [ENVOY_TEXT % 1, ENVOY_JSON % 2])
    assert frame["_reject"].to_list() == ["not an envoy JSON line", None]
    assert frame["path"].to_list() == [None, "/j2"]


def test_parse_envoy_json_alone() -> None:
    frame = jsonlog.parse_envoy_json(pl.Series([ENVOY_JSON % 1, ENVOY_TEXT % 2]), ParserState())
    assert frame["_reject"].to_list() == [None, "not a JSON object"]


# --- bad lines --------------------------------------------------------------------------------

BAD = [
    ('{"a":', "invalid JSON"),
    ('{"status":409,"method":"GET"', "invalid JSON"),
    ('{"a":1}}', "invalid JSON"),
    ('{"a":"\x01"}', "invalid JSON"),
    ("{'status': 409}", "invalid JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ('[{"status":409}]', "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    ("409", "not a JSON object"),
    ("null", "not a JSON object"),
    ("\x00\x01\x02\xff\ufffd\ufffd binary", "not a JSON object"),
    ("{" + "x" * 1_000_000, "invalid JSON"),
    ('{"a":"' + "\ufffd" * 10 + '"', "invalid JSON"),
    ("[" * 100_000, "not a JSON object"),
    ('{"a":' * 50_000, "invalid JSON"),
]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_bad_lines_are_rejected_in_place(fmt: str) -> None:
    good = str(next(case.values[1] for case in CASES if case.values[0] == fmt))
    lines: list[str | None] = [good]
    for line, _ in BAD:
        lines += [line, good]
    frame = parse(fmt, lines)
    assert frame.height == len(lines)
    assert frame.columns == list(schema.empty().columns)
    reasons = frame["_reject"].to_list()
    assert reasons[0::2] == [None] * (len(BAD) + 1)  # the good line around every bad one parses
    if fmt != "envoy":  # envoy hands non-JSON lines to its text parser, with its own reasons
        assert reasons[1::2] == [reason for _, reason in BAD]
    else:
        assert all(r is not None for r in reasons[1::2])


def test_huge_valid_line_parses() -> None:
    huge = '{"time":"2025-10-10T13:55:36Z","method":"GET","path":"/x","status":200,"pad":"%s"}'
    row = one("json", huge % ("é" * 1_000_000))
    assert row["_reject"] is None and row["status"] == 200


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_empty_and_null_input(fmt: str) -> None:
    assert parse(fmt, []).schema == schema.empty().schema
    frame = parse(fmt, [None])
    assert frame.height == 1 and frame["_skip"][0] is True


# --- extraction -------------------------------------------------------------------------------


def test_extract_json_paths_and_kinds() -> None:
    lines = pl.Series(
        [
            '{"a":{"b":[{"c":1}],"Ua":["x","y"]},"d.e":2.50,"f":{"g":true},"n":null,"s":"t\\u00e9"}',
            '{"a":"flat","f":"text"}',
            "[1]",
            '{"a":',
        ]
    )
    paths = ["a/b/0/c", "a/Ua/0", "a", "d.e", "f/g", "f", "n", "s", "missing/x"]
    got = jsonpaths.extract_json(lines, paths)
    assert got.columns == [*paths, "_json"]
    assert got.row(0) == (
        "1",
        "x",
        '{"b":[{"c":1}],"Ua":["x","y"]}',
        "2.5",
        "true",
        '{"g":true}',
        None,
        "té",
        None,
        "object",
    )
    assert got.row(1) == (None, None, "flat", None, None, "text", None, None, None, "object")
    assert got["_json"].to_list()[2:] == ["other", "invalid"]


def test_extract_json_keys_that_differ_only_in_case() -> None:
    lines = pl.Series(['{"Timestamp":"A","timestamp":"b","x":{"Y":1,"y":2}}'])
    got = jsonpaths.extract_json(lines, ["timestamp", "Timestamp", "x/y", "x/Y"])
    assert got.row(0) == ("b", "A", "2", "1", "object")


def test_a_rare_key_is_found_in_a_big_batch() -> None:
    # Keys no sampled line has are still read when some line has them.
    plain = '{"time":"2025-10-10T13:55:36Z","method":"PUT","path":"/o/%d","status":200}'
    lines = [plain % i for i in range(5000)]
    lines[3777] = lines[3777].replace('"status":200', '"status":409,"errorMsg":"stale version"')
    frame = parse("json", lines)
    assert frame["message"].drop_nulls().to_list() == ["stale version"]
    assert frame["status"][3777] == 409


def test_batches_do_not_change_results() -> None:
    lines = read_lines(GOLDEN_DIR / "json.log")
    whole = records(parse("json", lines))
    assert [records(parse("json", [line]))[0] for line in lines] == whole


# --- envelopes --------------------------------------------------------------------------------


def docker(log: str, stream: str = "stdout", time: str = "2019-02-12T18:37:43.139620629Z") -> str:
    return json.dumps({"log": log, "stream": stream, "time": time})


def cri(
    text: str, tag: str = "F", stream: str = "stdout", time: str = "2016-10-06T00:17:09.669794202Z"
) -> str:
    return f"{time} {stream} {tag} {text}"


def unwrapped(name: str, lines: list[str], final: bool = True) -> tuple[list[tuple[Any, ...]], int]:
    result = envelopes.unwrap(name, pl.Series(lines, dtype=pl.String), final)
    assert result.frame.columns == ["text", "envelope_ts", "row"]
    return result.frame.rows(), result.consumed


def test_docker_json_file() -> None:
    rows, consumed = unwrapped(
        "docker",
        [
            docker('{"status":409}\n'),
            docker('x\ty "q" é\r\n', "stderr", "2019-02-12T19:37:43+01:00"),
            "not an envelope line",
            docker("\n"),
        ],
    )
    assert rows == [
        ('{"status":409}', utc("2019-02-12T18:37:43.139620+00:00"), 0),
        ('x\ty "q" é', utc("2019-02-12T18:37:43+00:00"), 1),
        ("not an envelope line", None, 2),
        ("", utc("2019-02-12T18:37:43.139620+00:00"), 3),
    ]
    assert consumed == 4


def test_docker_long_lines_are_joined_and_an_unfinished_one_waits() -> None:
    lines = [docker("part one, "), docker("part two\n"), docker("whole\n"), docker("tail piece")]
    rows, consumed = unwrapped("docker", lines, final=False)
    assert [(text, row) for text, _, row in rows] == [("part one, part two", 1), ("whole", 2)]
    assert consumed == 3
    rows, consumed = unwrapped("docker", lines, final=True)
    assert [(text, row) for text, _, row in rows][-1] == ("tail piece", 3)
    assert consumed == 4


def test_docker_message_key_and_a_stray_brace() -> None:
    line = (
        '{"message":"ACCESS [x] \\"GET / HTTP/1.1\\" 200","stream":"stdout",'
        '"time":"2019-02-12T18:37:43Z"}}'
    )
    rows, _ = unwrapped("docker", [line, line[:-1]])
    assert [r[0] for r in rows] == ['ACCESS [x] "GET / HTTP/1.1" 200'] * 2
    assert rows[0][1] == utc("2019-02-12T18:37:43+00:00")


def test_cri_partial_lines_join_per_stream() -> None:
    lines = [
        cri("hello ", "P"),
        cri("an error line", "F", "stderr"),
        cri("wor", "P"),
        cri("ld", "F"),
        "garbage between",
        cri("", "F", time="2016-10-06T02:17:10+02:00"),
    ]
    rows, consumed = unwrapped("cri", lines)
    assert rows == [
        ("an error line", utc("2016-10-06T00:17:09.669794+00:00"), 1),
        ("hello world", utc("2016-10-06T00:17:09.669794+00:00"), 3),
        ("garbage between", None, 4),
        ("", utc("2016-10-06T00:17:10+00:00"), 5),
    ]
    assert consumed == 6


def test_cri_unfinished_partial_is_not_consumed() -> None:
    lines = [cri("done"), cri("long ", "P"), cri("other stream", "F", "stderr"), cri("li", "P")]
    rows, consumed = unwrapped("cri", lines, final=False)
    # The stderr line ends after the unfinished chain starts: it waits too, or the chain
    # would lose its first piece when the caller offers lines again from `consumed`.
    assert [(t, r) for t, _, r in rows] == [("done", 0)]
    assert consumed == 1
    again, consumed = unwrapped("cri", [*lines[1:], cri("ne", "F")], final=False)
    assert [(t, r) for t, _, r in again] == [("other stream", 1), ("long line", 3)]
    assert consumed == 4


def test_compose_prefixes() -> None:
    rows, consumed = unwrapped(
        "compose",
        ['caddy  | {"a":1}', "web-1    |", "Attaching to caddy, web-1", "\x1b[36mapi  |\x1b[0m hi"],
    )
    assert [(t, r) for t, _, r in rows] == [
        ('{"a":1}', 0),
        ("", 1),
        ("Attaching to caddy, web-1", 2),
        ("hi", 3),
    ]
    assert consumed == 4


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([docker("a\n"), docker("b\n"), "junk"], "docker"),
        ([cri("a"), cri("b", "P"), cri("c"), ""], "cri"),
        (["caddy  | x", "caddy  | y", "Attaching to caddy"], "compose"),
        (['{"log":"x"}', '{"status":409}'], None),
        (['127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 1'], None),
        ([cri("a"), "b", "c"], None),
        (["", "  "], None),
    ],
)
def test_detect_envelope(lines: list[str], expected: str | None) -> None:
    assert envelopes.detect_envelope(pl.Series(lines, dtype=pl.String)) == expected


def test_unknown_envelope() -> None:
    with pytest.raises(ValueError, match="unknown envelope"):
        envelopes.unwrap("podman", pl.Series(["x"]), final=True)
