"""Parsers alb, cloudfront, s3 (ingest/formats/aws.py) and w3c (ingest/formats/w3c.py).

Tables of single lines, golden files (tests/golden/aws_w3c/<format>.log -> .json; regenerate with
UPDATE_GOLDEN=1 after checking the diff by eye), the real logs in ../shared/real_logs with exact
counts, header state carried across batches, and bad lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conflictradar.ingest import schema
from conflictradar.ingest.formats import ParserState, aws, w3c
from tests.conftest import GOLDEN
from tests.kit import counts, read_lines, records

Parse = Callable[[pl.Series, ParserState], pl.DataFrame]
PARSERS: dict[str, Parse] = {
    "alb": aws.parse_alb,
    "cloudfront": aws.parse_cloudfront,
    "s3": aws.parse_s3,
    "w3c": w3c.parse_w3c,
}
GOLDEN_DIR = GOLDEN / "aws_w3c"
CF_FIELDS = "#Fields: " + " ".join(aws.CLOUDFRONT_FIELDS)
IIS_FIELDS = (
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip"
    " cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes cs-bytes"
    " time-taken"
)
OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"


def parse(fmt: str, lines: Sequence[str | None], state: ParserState | None = None) -> pl.DataFrame:
    return PARSERS[fmt](pl.Series(lines, dtype=pl.String), state or ParserState())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def alb_line(
    times: str = "0.001 0.012 0.000",
    statuses: str = "409 409",
    request: str = "PUT https://api.example.com:443/orders/8841?expand=items HTTP/2.0",
    client: str = "203.0.113.24:50112",
    tail: str = ' "api.example.com" "-" 3 2024-05-01T09:15:03.087000Z "forward" "-" "-"',
) -> str:
    return (
        f"h2 2024-05-01T09:15:03.100200Z app/my-lb/50dc6c495c0c9188 {client} 10.0.0.7:8080"
        f' {times} {statuses} 412 219 "{request}" "okhttp/4.12.0" TLS_AES_128_GCM_SHA256'
        f" TLSv1.3 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/o/73e2d6bc"
        f' "Root=1-66320f17-6c50fc2a5aa7d12e119d3a89"{tail}'
    )


def s3_line(
    status_error: str = "409 ConditionalRequestConflict",
    bytes_sent: str = "356",
    operation: str = "REST.PUT.OBJECT",
    request: str = "PUT /reports/q1.csv HTTP/1.1",
    tail: str = " - hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader"
    " bkt.s3.us-west-1.amazonaws.com TLSv1.3 - -",
) -> str:
    return (
        f"{OWNER} bkt [01/May/2024:09:30:00 +0200] 203.0.113.50 {OWNER} 4B2A6C3EEXAMPLE"
        f' {operation} reports/q1.csv "{request}" {status_error} {bytes_sent} 48213 21 -'
        f' "-" "aws-sdk-java/2.25.2"{tail}'
    )


def cf_line(**change: str) -> str:
    values = dict.fromkeys(aws.CLOUDFRONT_FIELDS, "-")
    values.update(
        {
            "date": "2024-05-01",
            "time": "09:20:11",
            "x-edge-location": "FRA56-P5",
            "sc-bytes": "512",
            "c-ip": "10.1.2.3",
            "cs-method": "PUT",
            "cs(Host)": "d111111abcdef8.cloudfront.net",
            "cs-uri-stem": "/api/carts/77",
            "sc-status": "409",
            "cs(User-Agent)": "curl/8.5.0",
            "x-edge-result-type": "Miss",
            "x-edge-request-id": "mH2cvBCtLgbWmxz0k8kXwc==",
            "x-host-header": "shop.example.com",
            "time-taken": "0.052",
        }
    )
    values.update(change)
    return "\t".join(values.values())


def iis_line(status: str = "409", agent: str = "curl/8.5.0", path: str = "/api/orders/1") -> str:
    return (
        f"2024-05-01 09:00:01 10.0.0.4 PUT {path} - 443 - 203.0.113.7 {agent} - {status} 0 0"
        " 512 1234 17"
    )


# (format, lines, expected fields of the last row). `None` in expected means the column is null.
TABLE: list[tuple[str, str, list[str | None], dict[str, Any]]] = [
    (
        "alb",
        "service answered 409",
        [alb_line()],
        {
            "ts": utc("2024-05-01T09:15:03.100200"),
            "host": "api.example.com",
            "client_ip": "203.0.113.24",
            "method": "PUT",
            "path": "/orders/8841",
            "query": "expand=items",
            "status": 409,
            "upstream_status": 409,
            "bytes": 219,
            "duration_ms": 13.0,
            "request_id": "Root=1-66320f17-6c50fc2a5aa7d12e119d3a89",
            "message": None,
            "_reject": None,
        },
    ),
    (
        "alb",
        "load balancer answered, no target",
        [alb_line(times="-1 -1 -1", statuses="409 -")],
        {"status": 409, "upstream_status": None, "duration_ms": None},
    ),
    (
        "alb",
        "target did not answer",
        [alb_line(times="0.000 -1 -1", statuses="504 -")],
        {"status": 504, "duration_ms": None},
    ),
    (
        "alb",
        "error_reason is the message",
        [alb_line(tail=' "-" "-" 2 2024-05-01T09:15:03Z "forward" "-" "LambdaUnhandled" "-"')],
        {"message": "LambdaUnhandled", "host": "api.example.com"},
    ),
    (
        "alb",
        "no SNI: host from the request URL",
        [alb_line(request="GET http://www.example.com:80/a/b HTTP/1.1", tail="")],
        {"host": "www.example.com", "path": "/a/b", "query": None},
    ),
    (
        "alb",
        "IPv6 client",
        [alb_line(client="[2001:db8::42]:51234")],
        {"client_ip": "2001:db8::42"},
    ),
    (
        "alb",
        "unparseable request",
        [alb_line(request="- http://www.example.com:80- -", statuses="400 -")],
        {"method": None, "path": "/", "status": 400, "_reject": None},
    ),
    (
        "alb",
        "newer trailing fields",
        [
            alb_line(
                tail=' "-" "-" 1 2024-05-01T09:15:03Z "forward" "-" "-" "a" "b" "c" "d" TID_1 x'
            )
        ],
        {"status": 409, "_reject": None},
    ),
    ("alb", "CRLF line end", [alb_line() + "\r"], {"status": 409, "_reject": None}),
    (
        "alb",
        "classic ELB line",
        [
            "2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80"
            ' 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1"'
        ],
        {"_reject": "not an alb access log line"},
    ),
    (
        "s3",
        "conditional write conflict",
        [s3_line()],
        {
            "ts": utc("2024-05-01T07:30:00"),
            "host": "bkt.s3.us-west-1.amazonaws.com",
            "client_ip": "203.0.113.50",
            "user_agent": "aws-sdk-java/2.25.2",
            "method": "PUT",
            "path": "/reports/q1.csv",
            "status": 409,
            "bytes": 356,
            "duration_ms": 21.0,
            "request_id": "4B2A6C3EEXAMPLE",
            "message": "ConditionalRequestConflict",
        },
    ),
    (
        "s3",
        "OperationAborted",
        [s3_line("409 OperationAborted", operation="REST.PUT.BUCKET", request="PUT /bkt HTTP/1.1")],
        {"message": "OperationAborted", "path": "/bkt"},
    ),
    ("s3", "no error", [s3_line("200 -")], {"status": 200, "message": None}),
    ("s3", "bytes_sent '-' is zero", [s3_line(bytes_sent="-")], {"bytes": 0}),
    ("s3", "old record: no host_header", [s3_line(tail=" -")], {"host": "bkt", "status": 409}),
    ("s3", "oldest record: ends at user_agent", [s3_line(tail="")], {"host": "bkt"}),
    (
        "s3",
        "lifecycle action is skipped",
        [s3_line("- -", operation="S3.TRANSITION_SIA.OBJECT", request="-")],
        {"_skip": True, "_reject": None},
    ),
    ("s3", "not S3", ["GET /x HTTP/1.1"], {"_reject": "not an s3 access log line"}),
    (
        "cloudfront",
        "documented default field order, no header",
        [cf_line()],
        {
            "ts": utc("2024-05-01T09:20:11"),
            "host": "shop.example.com",
            "client_ip": "10.1.2.3",
            "user_agent": "curl/8.5.0",
            "method": "PUT",
            "path": "/api/carts/77",
            "query": None,
            "status": 409,
            "bytes": 512,
            "duration_ms": 52.0,
            "request_id": "mH2cvBCtLgbWmxz0k8kXwc==",
            "message": None,
        },
    ),
    (
        "cloudfront",
        "URL-encoded user agent",
        [cf_line(**{"cs(User-Agent)": "Mozilla/5.0%20(X11;%20Linux)%20%2522q%2522"})],
        {"user_agent": "Mozilla/5.0 (X11; Linux) %22q%22"},
    ),
    (
        "cloudfront",
        "x-forwarded-for names the viewer",
        [cf_line(**{"x-forwarded-for": "203.0.113.9"})],
        {"client_ip": "203.0.113.9"},
    ),
    (
        "cloudfront",
        "error result type gives the message",
        [
            cf_line(
                **{"x-edge-result-type": "Error", "x-edge-detailed-result-type": "OriginDnsError"}
            )
        ],
        {"message": "OriginDnsError"},
    ),
    (
        "cloudfront",
        "no host header: the distribution domain",
        [cf_line(**{"x-host-header": "-"})],
        {"host": "d111111abcdef8.cloudfront.net"},
    ),
    (
        "cloudfront",
        "header with another order",
        [
            "#Version: 1.0",
            "#Fields: time date sc-status cs-uri-stem",
            "01:02:03\t2024-05-01\t409\t/x",
        ],
        {"ts": utc("2024-05-01T01:02:03"), "status": 409, "path": "/x", "_reject": None},
    ),
    (
        "cloudfront",
        "an old log without the newer fields",
        ["\t".join(cf_line().split("\t")[:24])],
        {"status": 409, "_reject": None},
    ),
    ("cloudfront", "no tabs", ["GET / 200"], {"_reject": "not a cloudfront line"}),
    (
        "w3c",
        "IIS default fields",
        [IIS_FIELDS, iis_line()],
        {
            "ts": utc("2024-05-01T09:00:01"),
            "client_ip": "203.0.113.7",
            "user_agent": "curl/8.5.0",
            "method": "PUT",
            "path": "/api/orders/1",
            "query": None,
            "status": 409,
            "bytes": 512,
            "duration_ms": 17.0,
            "_reject": None,
            "_skip": False,
        },
    ),
    (
        "w3c",
        "+ is a space, ++ a space and a +",
        [IIS_FIELDS, iis_line(agent="Mozilla/5.0+(compatible;++http://x.test/bot)")],
        {"user_agent": "Mozilla/5.0 (compatible; +http://x.test/bot)"},
    ),
    ("w3c", "directive", [IIS_FIELDS, "#Remark: hello"], {"_skip": True, "_reject": None}),
    ("w3c", "blank", [IIS_FIELDS, "  "], {"_skip": True, "_reject": None}),
    ("w3c", "no header", [iis_line()], {"_reject": "w3c line before any #Fields header"}),
    (
        "w3c",
        "one field short",
        [IIS_FIELDS, iis_line().rsplit(" ", 1)[0]],
        {"_reject": "w3c line has 16 fields, its #Fields header names 17"},
    ),
    (
        "w3c",
        "field names are case-insensitive, blanks collapse",
        ["#FIELDS:  Date\tTime  C-IP SC-Status", "2024-05-01\t00:00:01  192.0.2.1 409"],
        {"ts": utc("2024-05-01T00:00:01"), "client_ip": "192.0.2.1", "status": 409},
    ),
    (
        "w3c",
        "time only, date from #Date",
        ["#Date: 2024-05-02 00:00:00", "#Fields: time cs-method sc-status", "23:59:59 GET 409"],
        {"ts": utc("2024-05-02T23:59:59"), "method": "GET"},
    ),
    (
        "w3c",
        "#Date as 12-Jan-1996 (the W3C draft's example)",
        ["#Date: 12-Jan-1996 00:00:00", "#Fields: time cs-method sc-status", "00:34:23 GET 200"],
        {"ts": utc("1996-01-12T00:34:23")},
    ),
    (
        "w3c",
        "#GMT-Offset shifts the local times to UTC",
        ["#GMT-Offset: -0800", "#Fields: date time sc-status", "2024-05-01 23:00:00 409"],
        {"ts": utc("2024-05-02T07:00:00")},
    ),
    (
        "w3c",
        "quoted values, doubled quotes, empty quotes",
        [
            "#Fields: date time c-ip cs(User-Agent) cs-method cs-uri-stem sc-status cs(Referer)",
            '2024-05-01 00:00:01 "192.0.2.1" "a ""b"" c+d" GET /x 409 ""',
        ],
        {"client_ip": "192.0.2.1", "user_agent": 'a "b" c+d', "status": 409},
    ),
    (
        "w3c",
        "cs-uri with host but no scheme (Incapsula)",
        ["#Fields: date time cs-uri sc-status", "2024-05-01 00:00:01 www.example.com/a?b=1 409"],
        {"host": "www.example.com", "path": "/a", "query": "b=1"},
    ),
    (
        "w3c",
        "cs-host and X-Forwarded-For",
        [
            "#Fields: date time c-ip cs-host sc-status X-Forwarded-For",
            "2024-05-01 00:00:01 10.0.0.9 api.example.com 409 198.51.100.1,+10.0.0.9",
        ],
        {"host": "api.example.com", "client_ip": "198.51.100.1"},
    ),
    (
        "w3c",
        "FTP session prefix on the command",
        ["#Fields: date time cs-method cs-uri-stem sc-status", "2024-05-01 00:00:01 [7]USER x 331"],
        {"method": "USER", "status": 331},
    ),
]


@pytest.mark.parametrize(
    ("fmt", "lines", "expected"),
    [
        pytest.param(fmt, lines, expected, id=f"{fmt}: {name}")
        for fmt, name, lines, expected in TABLE
    ],
)
def test_table(fmt: str, lines: list[str | None], expected: dict[str, Any]) -> None:
    out = parse(fmt, lines)
    assert out.height == len(lines)
    row = out.row(-1, named=True)
    assert {key: row[key] for key in expected} == expected


def test_formats_registered_by_module() -> None:
    assert [f.name for f in aws.FORMATS] == ["alb", "cloudfront", "s3"]
    assert [f.name for f in w3c.FORMATS] == ["w3c"]


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_output_has_the_canonical_shape(fmt: str) -> None:
    assert parse(fmt, ["x", ""]).schema == schema.empty().schema
    assert parse(fmt, []).schema == schema.empty().schema


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_golden(fmt: str) -> None:
    lines = read_lines(GOLDEN_DIR / f"{fmt}.log")
    got = records(parse(fmt, lines))
    expected_file = GOLDEN_DIR / f"{fmt}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        # One row per line, in input order, so a diff points at the log line that changed.
        rows = ",\n".join(json.dumps(row, ensure_ascii=False) for row in got)
        expected_file.write_text(f"[\n{rows}\n]\n")
    assert got == json.loads(expected_file.read_text())


# (format, file under real_logs, parsed, skipped, rejected): counted by reading each file.
REAL: list[tuple[str, str, int, int, int]] = [
    ("alb", "crowdsec-hub-tests/aws-alb-logs__aws-alb-logs.log", 14, 0, 0),
    ("cloudfront", "crowdsec-hub-tests/aws-cloudfront-logs__aws-cloudfront-logs.log", 2, 0, 0),
    ("w3c", "lnav-tests/logfile_w3c.0", 1, 4, 0),
    # Oracle Web Cache: blank-padded columns, quoted values, #GMT-Offset after #Fields.
    ("w3c", "lnav-tests/logfile_w3c.1", 1, 6, 0),
    # Microsoft FTP: two header blocks, time-only records dated by their own #Date.
    ("w3c", "lnav-tests/logfile_w3c.2", 14, 8, 0),
    # IIS Advanced Logging: blank lines, local time, quoted values with doubled quotes.
    ("w3c", "lnav-tests/logfile_w3c.3", 3, 7, 0),
    # Incapsula: everything quoted; the second record has an empty sc-status.
    ("w3c", "lnav-tests/logfile_w3c.4", 1, 4, 1),
    # A 6-field header over a 17-field line.
    ("w3c", "lnav-tests/logfile_w3c.5", 0, 1, 1),
    # Non-ASCII bytes in the user agent.
    ("w3c", "lnav-tests/logfile_w3c.6", 1, 4, 0),
    # Eleven header blocks.
    ("w3c", "lnav-tests/logfile_w3c_big.0", 210, 44, 0),
    # Markdown-mangled addresses from the beats fixture, IPv6.
    ("w3c", "beats-fixtures/iis_7.5_w3c.log", 4, 4, 0),
]


@pytest.mark.parametrize(
    ("fmt", "name", "parsed", "skipped", "rejected"),
    [pytest.param(*case, id=case[1]) for case in REAL],
)
def test_real_logs(
    real_logs: Path, fmt: str, name: str, parsed: int, skipped: int, rejected: int
) -> None:
    out = parse(fmt, read_lines(real_logs / name))
    assert counts(out) == (parsed, skipped, rejected)
    good = out.filter(pl.col("_reject").is_null() & ~pl.col("_skip"))
    assert good["ts"].null_count() == 0
    assert good["status"].null_count() == 0
    assert good["method"].null_count() == 0


@pytest.mark.parametrize(
    ("fmt", "name"), [pytest.param(fmt, name, id=name) for fmt, name, *_ in REAL]
)
def test_real_logs_parse_in_no_other_format(real_logs: Path, fmt: str, name: str) -> None:
    lines = read_lines(real_logs / name)
    for other in PARSERS:
        if other != fmt:
            assert counts(parse(other, lines))[0] == 0, other


def test_real_w3c_details(real_logs: Path) -> None:
    def rows(name: str) -> list[dict[str, Any]]:
        out = parse("w3c", read_lines(real_logs / "lnav-tests" / name))
        return out.filter(~pl.col("_skip")).to_dicts()

    oracle = rows("logfile_w3c.1")[0]
    assert oracle["ts"] == utc("2001-10-31T08:00:18")  # 00:00:18 at GMT-0800
    assert oracle["user_agent"] == "Mozilla/4.5 [en] (WinNT; I)"
    assert (oracle["path"], oracle["bytes"]) == ("/admin/images/oc_bottomleft.gif", 350)

    ftp = rows("logfile_w3c.2")
    assert ftp[0]["ts"] == utc("2000-10-09T16:44:49")
    assert ftp[-1]["ts"] == utc("2000-10-10T16:48:05")  # the second block's #Date
    assert ftp[0]["method"] == "USER"

    advanced = rows("logfile_w3c.3")
    assert advanced[0]["ts"] == utc("2012-08-15T17:00:00.363")
    assert advanced[0]["client_ip"] == "70.95.0.0"
    assert advanced[0]["host"] == "xzy.example.com"
    assert advanced[2]["status"] == 404  # the substatus held `" ""garbage"" w/ spaces "`

    incapsula = rows("logfile_w3c.4")
    assert (incapsula[0]["host"], incapsula[0]["path"]) == ("www.example.com", "/page.php")
    assert incapsula[1]["_reject"] == "no valid status"
    assert rows("logfile_w3c.5")[0]["_reject"] == (
        "w3c line has 17 fields, its #Fields header names 6"
    )
    assert rows("logfile_w3c.6")[0]["user_agent"].startswith("ÄÖÜäöü")


def test_real_alb_details(real_logs: Path) -> None:
    out = parse("alb", read_lines(real_logs / "crowdsec-hub-tests/aws-alb-logs__aws-alb-logs.log"))
    first, waf = out.row(1, named=True), out.row(3, named=True)
    assert first["duration_ms"] == 171.0  # 0.086 + 0.048 + 0.037 s
    assert (waf["status"], waf["upstream_status"], waf["duration_ms"]) == (404, None, None)
    assert waf["path"] == "/%%32%65%%32%65/"


def split_points(n: int, step: int) -> list[int]:
    return sorted({*range(0, n + 1, step), n})


@pytest.mark.parametrize(
    ("fmt", "name", "step"),
    [
        ("w3c", "lnav-tests/logfile_w3c.2", 1),
        ("w3c", "lnav-tests/logfile_w3c.1", 1),
        ("w3c", "lnav-tests/logfile_w3c_big.0", 7),
    ],
)
def test_header_state_carries_across_batches(
    real_logs: Path, fmt: str, name: str, step: int
) -> None:
    lines = read_lines(real_logs / name)
    whole = records(parse(fmt, lines))
    for cut in split_points(len(lines), step):
        state = ParserState()
        first = parse(fmt, lines[:cut], state)
        # Persisted with the file's offset, then read back by a resumed watcher.
        resumed = ParserState.loads(state.dumps())
        second = parse(fmt, lines[cut:], resumed)
        assert records(pl.concat([first, second])) == whole, f"cut at line {cut}"


def test_w3c_state_holds_the_last_header_and_date() -> None:
    state = ParserState()
    parse(
        "w3c",
        ["#Date: 2024-05-02 00:00:00", "#Fields: time sc-status", "#GMT-Offset: +0100"],
        state,
    )
    assert state.header == ["time", "sc-status"]
    assert state.extra == {"w3c_date": "2024-05-02", "w3c_gmt_offset": "+0100"}
    out = parse("w3c", ["01:00:00 409"], ParserState.loads(state.dumps()))
    assert out.row(0, named=True)["ts"] == utc("2024-05-02T00:00:00")


def test_cloudfront_header_carries_to_a_later_batch() -> None:
    state = ParserState()
    header = ["#Version: 1.0", "#Fields: date time cs-uri-stem sc-status time-taken"]
    assert counts(parse("cloudfront", header, state)) == (0, 2, 0)
    assert state.header == ["date", "time", "cs-uri-stem", "sc-status", "time-taken"]
    out = parse("cloudfront", ["2024-05-01\t00:00:01\t/x\t409\t0.5"], state)
    row = out.row(0, named=True)
    assert (row["path"], row["status"], row["duration_ms"]) == ("/x", 409, 500.0)


def test_w3c_columns_change_mid_batch() -> None:
    lines = [
        "#Fields: date time cs-method sc-status",
        "2024-05-01 00:00:01 GET 200",
        "#Fields: sc-status cs-method time date c-ip",
        "409 PUT 00:00:02 2024-05-01 192.0.2.1",
        "#Fields: date time cs-method sc-status",
        "2024-05-01 00:00:03 POST 201",
    ]
    out = parse("w3c", lines).filter(~pl.col("_skip"))
    assert out.select("method", "status", "client_ip").rows() == [
        ("GET", 200, None),
        ("PUT", 409, "192.0.2.1"),
        ("POST", 201, None),
    ]


def test_w3c_header_in_a_later_batch_replaces_the_stored_one() -> None:
    state = ParserState(header=["date", "time", "sc-status"])
    out = parse("w3c", ["2024-05-01 00:00:01 200", "#Fields: sc-status", "409"], state)
    assert out.filter(~pl.col("_skip"))["status"].to_list() == [200, 409]
    assert state.header == ["sc-status"]


GOOD = {
    "alb": alb_line(),
    "cloudfront": cf_line(),
    "s3": s3_line(),
    "w3c": iis_line(),
}
PREFIX: dict[str, list[str | None]] = {"w3c": [IIS_FIELDS]}
BAD: list[tuple[str, str | None]] = [
    ("binary garbage", "\x00\x01\x02\x7f\x1b[31m\ufffd\ufffd garbage"),
    ("U+FFFD", "\ufffd" * 40),
    ("1 MB line", "x" * 1_000_000),
    ("1 MB of fields", "a " * 500_000),
    ("null", None),
]


def verdicts(frame: pl.DataFrame) -> list[str]:
    return [
        "skipped" if skip else "parsed" if reject is None else "rejected"
        for reject, skip in frame.select("_reject", "_skip").iter_rows()
    ]


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_bad_lines_are_rejected_in_place(fmt: str) -> None:
    good = GOOD[fmt]
    prefix = PREFIX.get(fmt, [])
    lines = [
        *prefix,
        good,
        *[line for _, line in BAD],
        good[: len(good) // 3],  # truncated
        good,
        good.replace("409", "4O9", 1),  # a status that is not a number
    ]
    out = parse(fmt, lines)
    assert out.height == len(lines)
    body = out.slice(len(prefix))
    assert verdicts(body) == [
        "parsed",
        *["rejected"] * 4,  # garbage, U+FFFD, 1 MB line, 1 MB of fields
        "skipped",  # null: nothing there
        "rejected",  # truncated
        "parsed",  # order kept after all of that
        "rejected",
    ]
    assert body["status"][0] == body["status"][7] == 409
    assert all(body["_reject"].drop_nulls().str.len_chars() > 0)


def test_u_fffd_inside_a_field_still_parses() -> None:
    out = parse("w3c", [IIS_FIELDS, iis_line(agent="Mozilla\ufffd/5.0")])
    assert out.row(1, named=True)["user_agent"] == "Mozilla\ufffd/5.0"
    out = parse("alb", [alb_line(request="GET https://a.test:443/caf\ufffd HTTP/1.1")])
    assert out.row(0, named=True)["path"] == "/caf\ufffd"
