"""Application-server formats (uvicorn, django) and pasted Apache/Tomcat patterns: golden files
from published examples, the parser contract, detection against every other format, and whole
files (bare, docker-compose, Docker json-file, CRI) ingested into a real database.

Golden files live in tests/golden/servers: `<name>.log` is the input, `<name>.json` the parsed
rows. Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/test_formats_servers.py`,
then read the diff. Where each input line comes from:

- uvicorn.log: start-up/reload lines and `127.0.0.1:52640 - "GET /hello/Jack ..."` from
  https://zenn.dev/techflagcorp/articles/8d6327311e1e9f; `122.179.31.158:54604 - "GET
  /api/hello_world?..."` from https://openillumi.com/en/en-fix-uvicorn-log-missing-timestamp;
  the `%(asctime)s - INFO -` lines and the bare gunicorn-worker line `176.123.7.11:0 - "GET /
  HTTP/1.0" 200` from https://fadingcoder.top/post/102085.html; the 409 lines (bare and with a
  `docker compose logs -t` stamp) from issue 18; gunicorn's `[date] [pid] [INFO]` prefix and the
  colour codes as uvicorn writes them to a TTY (uvicorn/logging.py); a cut line last.
- django.log: the runserver session of "Django 1.1 Testing and Debugging", ch. 6
  (https://packtpub.com/en-pt/product/django-11-testing-and-debugging-9781847197566/chapter/django-debugging-overview-6/section/debug-support-in-the-development-server-ch06lvl1sec36);
  `Not Found: /random/url/` + its line from https://geek-questions.imtqy.com/articles/1628239/index.html;
  the 409 line from issue 18; the TLS-on-HTTP `code 400` pair as Python's http.server logs it.
- apache_request_id.log: issue 18's LogFormat; `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700]
  "GET /apache_pb.gif HTTP/1.0" 200 2326` is the example of Apache's log-files documentation
  (https://httpd.apache.org/docs/2.4/logs.html), with the two fields the format adds.
- apache_vhost_strftime.log: `%{format}t`, `%{msec_frac}t`, `%{ms}T`, `%{UNIQUE_ID}e` from the
  mod_log_config directive table (https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats).
- tomcat.log: `pattern="%h %l %u %t %r %s %b %D"` and its line `10.200.7.116 - - [23/Feb/2011:
  17:25:13 +0800] GET /search/gettotalnum.do HTTP/1.1 200 137 1` from
  http://liyanblog.cn/articles/2012/09/28/1348813876217.html (Tomcat AccessLogValve, %D in ms).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conflictradar.ingest import detect, schema
from conflictradar.ingest.formats import ParserState, UnknownFormatError, get_format
from tests.kit import check_golden, query_db, read_lines

GOLDEN = Path(__file__).resolve().parent / "golden" / "servers"
SERVERS = Path(__file__).resolve().parents[1] / "sample_logs" / "servers"

ISSUE_APACHE = '%h %l %u %t "%r" %>s %b %D "%{X-Request-Id}i"'
VHOST_STRFTIME = (
    '%v:%p [%{%Y-%m-%d %H:%M:%S}t.%{msec_frac}t %{%z}t] %a "%m %U%q" %>s %B %{ms}T '
    '"%{User-Agent}i" %{UNIQUE_ID}e'
)
CASES = {
    "uvicorn": "uvicorn",
    "django": "django",
    "apache_request_id": "apache:" + ISSUE_APACHE,
    "apache_vhost_strftime": "apache:" + VHOST_STRFTIME,
    "tomcat": "tomcat:pattern=%h %l %u %t %r %s %b %D",
}


def parse(spec: str, lines: list[str | None]) -> pl.DataFrame:
    return get_format(spec).parse(pl.Series(lines, dtype=pl.String), ParserState())


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """One compact dict per line: its non-null values, or the skip / reject marker."""
    out: list[dict[str, Any]] = []
    for row in frame.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts():
        if row["_skip"]:
            out.append({"skip": True})
        elif row["_reject"] is not None:
            out.append({"reject": row["_reject"]})
        else:
            out.append({k: v for k, v in row.items() if v is not None and k[0] != "_"})
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    lines = read_lines(GOLDEN / f"{name}.log")
    frame = parse(CASES[name], lines)
    assert frame.height == len(lines)
    check_golden(GOLDEN / f"{name}.json", rows(frame))


@pytest.mark.parametrize("spec", sorted(CASES.values()))
def test_output_has_canonical_shape_and_never_raises(spec: str) -> None:
    bad = ["", "x", None, '"', "\x00\xff", "[", 'INFO: - "', "%" * 3000, "{}"]
    frame = parse(spec, bad)
    assert frame.schema == schema.empty().schema
    assert frame.height == len(bad)
    assert frame.filter(~pl.col("_skip") & pl.col("_reject").is_null()).height == 0


def _row(spec: str, line: str) -> dict[str, Any]:
    (row,) = parse(spec, [line]).to_dicts()
    return row


def test_issue_lines_parse_with_method_path_status() -> None:
    bare = _row("uvicorn", 'INFO:     127.0.0.1:65029 - "POST /enrollments HTTP/1.1" 409 Conflict')
    assert (bare["method"], bare["path"], bare["status"], bare["client_ip"]) == (
        "POST", "/enrollments", 409, "127.0.0.1",
    )  # fmt: skip
    # No time of its own, and not rejected for it: the block gives it one (see below).
    assert bare["ts"] is None and bare["_reject"] is None
    django = _row("django", '[20/Nov/2026 08:00:01] "POST /api/orders HTTP/1.1" 409 52')
    assert (django["method"], django["path"], django["status"], django["bytes"]) == (
        "POST", "/api/orders", 409, 52,
    )  # fmt: skip
    assert django["ts"].isoformat() == "2026-11-20T08:00:01+00:00"


def test_issue_apache_format_reads_request_id_and_duration() -> None:
    line = '10.0.0.6 - - [10/Sep/2026:00:00:01 +0000] "PUT /orders/7 HTTP/1.1" 409 98 141233 "b71d"'
    row = _row("apache:" + ISSUE_APACHE, line)
    assert (row["request_id"], row["duration_ms"], row["status"], row["bytes"]) == (
        "b71d", 141.233, 409, 98,
    )  # fmt: skip
    assert get_format("apache:" + ISSUE_APACHE).name == "apache"


def test_apache_directive_and_nickname_forms() -> None:
    directive = r'LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" mine'
    fmt = get_format("apache:" + directive)
    assert fmt.name == "apache:mine"
    line = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.0" 200 5 "-" "ua \\"x\\""'
    row = fmt.parse(pl.Series([line]), ParserState()).to_dicts()[0]
    assert (row["path"], row["query"], row["user_agent"]) == ("/a", "b=1", 'ua "x"')
    assert get_format("apache:combined").name == "apache:combined"
    # Status conditions (`%400,501{User-agent}i`) and %% are understood.
    cond = get_format('apache:%h %t 100%% "%r" %>s "%400,501{User-agent}i"')
    row = cond.parse(pl.Series(['h [10/Oct/2000:13:55:36 -0700] 100% "GET / HTTP/1.0" 200 "-"']),
                     ParserState()).to_dicts()[0]  # fmt: skip
    assert row["status"] == 200 and row["_reject"] is None


def test_apache_combined_equals_the_builtin_combined_parser(real_logs: Path) -> None:
    lines = read_lines(real_logs / "beats-fixtures" / "apache_access_test.log")
    columns = ["ts", "client_ip", "method", "path", "query", "status", "bytes", "user_agent"]
    mine = parse("apache:combined", lines)
    builtin = parse("combined", lines)
    ok = mine["_reject"].is_null()
    # The strict pattern takes the combined lines (extra trailing fields too), not the common,
    # vhost-prefixed or agent-less ones the built-in parser also tolerates.
    assert ok.to_list() == [False, True, False, True, True, True, False]
    assert mine.filter(ok).select(columns).equals(builtin.filter(ok).select(columns))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("apache:%h %t", ["no %s or %>s"]),
        ('apache:%h "%r" %>s', ["no %t"]),
        ("apache:%t %s %Y", ["%Y", "not known"]),
        ("apache:%{%Y %Z}t %s", ["%Z", "cannot be read"]),
        ("apache:", ["give the pattern"]),
    ],
)
def test_bad_patterns_are_one_sentence(spec: str, words: list[str]) -> None:
    with pytest.raises(UnknownFormatError) as err:
        get_format(spec)
    message = str(err.value)
    assert all(w in message for w in words), message
    assert "\n" not in message


# --- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("uvicorn-bare.log", "uvicorn"),
        ("uvicorn-compose.log", "uvicorn"),
        ("uvicorn-docker.log", "uvicorn"),
        ("uvicorn-cri.log", "uvicorn"),
        ("django-runserver.log", "django"),
        ("rails-development.log", "rails"),
        ("rails-compose.log", "rails"),
        ("rails-docker.log", "rails"),
        ("rails-cri.log", "rails"),
    ],
)
def test_detected_with_and_without_envelopes(name: str, expected: str) -> None:
    found = detect.detect(pl.Series(read_lines(SERVERS / name), dtype=pl.String))
    assert found.format is not None and found.format.name == expected


def test_app_servers_take_no_combined_or_uwsgi_file(real_logs: Path) -> None:
    for rel in ("lnav-tests/logfile_uwsgi.0", "beats-fixtures/apache_access_test.log",
                "elastic-examples/apache_logs"):  # fmt: skip
        lines = pl.Series(read_lines(real_logs / rel), dtype=pl.String)
        for spec in ("uvicorn", "django", "rails"):
            frame = parse(spec, lines.to_list())
            clean = frame.filter(pl.col("_reject").is_null() & ~pl.col("_skip")).height
            assert clean == 0, (rel, spec)


# --- whole files into a real database ---------------------------------------------------------


def _ingest(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "conflictradar", "ingest", *args, "--db", str(db)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "CONFLICTRADAR_DB": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_every_409_of_the_server_samples_is_a_conflict(tmp_path: Path) -> None:
    db = tmp_path / "servers.duckdb"
    _ingest(db, str(SERVERS))
    got = query_db(
        db,
        "SELECT regexp_extract(file, '[^/]+$'), method, path, status FROM conflicts ORDER BY 1",
    )
    assert got == [
        ("apache-logformat.log", "PUT", "/invoices/12", 409),
        ("django-runserver.log", "POST", "/api/orders", 409),
        ("rails-compose.log", "PUT", "/orders/7", 409),
        ("rails-cri.log", "PUT", "/orders/7", 409),
        ("rails-development.log", "PUT", "/orders/7", 409),
        ("rails-docker.log", "PUT", "/orders/7", 409),
        ("uvicorn-bare.log", "POST", "/enrollments", 409),
        ("uvicorn-compose.log", "POST", "/events/2/reserve", 409),
        ("uvicorn-cri.log", "DELETE", "/holds/88", 409),
        ("uvicorn-docker.log", "PUT", "/seats/14", 409),
    ]
    rails = query_db(db, "SELECT DISTINCT cause, message FROM conflicts WHERE format = 'rails'")
    assert rails == [
        (
            "version_mismatch",
            "ActiveRecord::StaleObjectError (Attempted to update a stale object: Order.)",
        )
    ]
    formats = dict(
        query_db(db, "SELECT DISTINCT regexp_extract(file, '[^/]+$'), format FROM requests")
    )
    # Times from the envelope are the runtime's; a bare uvicorn line's time is when it was read.
    assert formats["uvicorn-bare.log"] == "uvicorn (time read)"
    assert formats["uvicorn-docker.log"] == formats["uvicorn-cri.log"] == "uvicorn"
    times = dict(query_db(db, "SELECT regexp_extract(file, '[^/]+$'), max(ts)::VARCHAR FROM requests"
                            " WHERE status = 409 GROUP BY 1"))  # fmt: skip
    assert times["uvicorn-docker.log"] == "2026-06-18 15:40:02.23+00"
    assert times["uvicorn-cri.log"] == "2026-06-19 08:10:02.23+00"
    assert times["uvicorn-compose.log"] == "2026-06-18 15:38:34.140891+00"


def test_compose_without_timestamps_takes_the_read_time(tmp_path: Path) -> None:
    log = tmp_path / "compose.log"
    log.write_text(
        "api-1  | INFO:     Started server process [1]\n"
        'api-1  | INFO:     172.18.0.1:48426 - "POST /events/2/reserve HTTP/1.1" 409 Conflict\n'
    )
    db = tmp_path / "c.duckdb"
    _ingest(db, str(log))
    ((fmt, recent),) = query_db(db, "SELECT format, ts > now() - INTERVAL 1 HOUR FROM requests")
    assert (fmt, recent) == ("uvicorn (time read)", True)


def test_forced_apache_format_reads_request_id_and_duration(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    _ingest(db, str(SERVERS / "apache-logformat.log"), "--format", "apache:" + ISSUE_APACHE)
    got = query_db(db, "SELECT line, request_id, duration_ms, format FROM requests ORDER BY line")
    assert got == [
        (1, "3f9c2a1e-7", 1.84, "apache"),
        (2, "3f9c2a1e-8", 12.044, "apache"),
        (3, "b71d0c55-1", 141.233, "apache"),
        (4, None, 0.95, "apache"),
    ]
