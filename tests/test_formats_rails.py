"""Rails request logs (two lines per request) and the issue-18 lines in every envelope.

Golden files in tests/golden/servers (regenerate with `UPDATE_GOLDEN=1`, then read the diff):
- rails_heroku.log: a Heroku log of one request, from https://gist.github.com/pekeler/2922033
  (`app[web.3]:` is the process stream; the router's line is not Rails').
- rails_development.log: the development.log request of https://gist.github.com/bluerabbit/5053282
  (`Started GET "/blogs/1" ...`, `Completed 200 OK in 17ms (Views: 16.6ms | ActiveRecord: 0.0ms)`),
  then issue 18's PUT with the StaleObjectError between its lines, then a `Completed 204 No
  Content in 280ms` without its Started, as https://gist.github.com/obrie/d30c8475d690f64c0da333c37883258b
  begins.
- rails_tagged.log: production log through Ruby Logger's default formatter
  (`I, [time #pid]  INFO -- : msg`) with `config.log_tags = [:request_id]`: two requests
  interleaved, the exception after `Completed` line by line as ActionDispatch::DebugExceptions
  writes it (message `"#{exception.class} (#{message}):"`, StaleObjectError's message from
  https://api.rubyonrails.org/classes/ActiveRecord/StaleObjectError.html), and a request whose
  Completed is not in the file yet.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from conflictradar.ingest.formats import ParserState, get_format
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.kit import check_golden, read_lines
from tests.test_formats_servers import rows

GOLDEN = Path(__file__).resolve().parent / "golden" / "servers"

RAILS_REQUEST = [
    'Started PUT "/orders/7" for 10.0.0.5 at 2026-09-10 00:00:00 +0000',
    "Processing by OrdersController#update as JSON",
    '  Parameters: {"order"=>{"lock_version"=>"3"}}',
    "ActiveRecord::StaleObjectError (Attempted to update a stale object: Order.):",
    "Completed 409 Conflict in 141ms (Views: 0.1ms)",
]


def parse(lines: list[str], state: ParserState | None = None) -> pl.DataFrame:
    return get_format("rails").parse(pl.Series(lines, dtype=pl.String), state or ParserState())


@pytest.mark.parametrize("name", ["rails_heroku", "rails_development", "rails_tagged"])
def test_golden(name: str) -> None:
    lines = read_lines(GOLDEN / f"{name}.log")
    frame = parse([line or "" for line in lines])
    assert frame.height == len(lines)
    check_golden(GOLDEN / f"{name}.json", rows(frame))


def test_one_request_row_on_the_completed_line_the_rest_skipped() -> None:
    frame = parse(RAILS_REQUEST)
    assert frame["_skip"].to_list() == [True, True, True, True, False]
    assert frame["_reject"].null_count() == len(RAILS_REQUEST)
    row = frame.row(4, named=True)
    assert (row["method"], row["path"], row["status"], row["client_ip"], row["duration_ms"]) == (
        "PUT", "/orders/7", 409, "10.0.0.5", 141.0,
    )  # fmt: skip
    assert (
        row["message"]
        == "ActiveRecord::StaleObjectError (Attempted to update a stale object: Order.)"
    )
    assert row["ts"] == datetime(2026, 9, 10, tzinfo=UTC)


@pytest.mark.parametrize("cut", range(1, len(RAILS_REQUEST)))
def test_a_request_split_across_batches_is_joined(cut: int) -> None:
    # `watch` reads what is there: the Completed may come batches after its Started.
    state = ParserState()
    first = parse(RAILS_REQUEST[:cut], state)
    assert first["_skip"].all()
    resumed = ParserState.loads(state.dumps())  # the state is persisted with the offset
    second = parse(RAILS_REQUEST[cut:], resumed)
    row = second.row(second.height - 1, named=True)
    assert (row["method"], row["path"], row["status"]) == ("PUT", "/orders/7", 409)
    assert row["message"] is not None and "StaleObjectError" in row["message"]
    assert "rails_pending" not in resumed.extra  # closed: nothing left open


def test_untagged_interleaved_requests_pair_in_order_within_a_process() -> None:
    prefix = "I, [2026-09-10T00:00:0{s}.000000 #{pid}]  INFO -- : "
    lines = [
        prefix.format(s=0, pid=1) + 'Started PUT "/a" for 1.1.1.1 at 2026-09-10 00:00:00 +0000',
        prefix.format(s=0, pid=2) + 'Started PUT "/b" for 2.2.2.2 at 2026-09-10 00:00:00 +0000',
        prefix.format(s=1, pid=1) + 'Started PUT "/c" for 3.3.3.3 at 2026-09-10 00:00:01 +0000',
        prefix.format(s=2, pid=2) + "Completed 201 Created in 5ms",
        prefix.format(s=2, pid=1) + "Completed 409 Conflict in 5ms",
        prefix.format(s=3, pid=1) + "Completed 200 OK in 5ms",
    ]
    got = parse(lines).filter(~pl.col("_skip")).select("path", "status").rows()
    assert got == [("/b", 201), ("/a", 409), ("/c", 200)]


def test_a_completed_without_started_or_time_is_rejected_not_lost() -> None:
    frame = parse(["Completed 409 Conflict in 3ms"])
    assert frame["_reject"].to_list() == ["Rails Completed line without its Started line"]


def test_open_requests_kept_across_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from conflictradar.ingest.formats import rails

    monkeypatch.setattr(rails, "MAX_PENDING", 3)
    state = ParserState()
    start = datetime(2026, 9, 10, tzinfo=UTC)
    lines = [
        f'[{i:032x}] Started GET "/r/{i}" for 1.1.1.1 at '
        f"{(start + timedelta(seconds=i)).strftime('%Y-%m-%d %H:%M:%S')} +0000"
        for i in range(5)
    ]
    parse(lines, state)
    assert [r[3] for r in json.loads(state.extra["rails_pending"])] == ["/r/2", "/r/3", "/r/4"]


# --- the issue's lines, bare and in every envelope, ingested into a real database -----------


ISSUE_LINES = {
    "uvicorn": ['INFO:     127.0.0.1:65029 - "POST /enrollments HTTP/1.1" 409 Conflict'],
    "django": ['[20/Nov/2026 08:00:01] "POST /api/orders HTTP/1.1" 409 52'],
    "rails": RAILS_REQUEST,
}
ISSUE_REQUEST = {
    "uvicorn": ("POST", "/enrollments"),
    "django": ("POST", "/api/orders"),
    "rails": ("PUT", "/orders/7"),
}


def _wrap(envelope: str, lines: list[str]) -> str:
    start = datetime(2026, 9, 10, 0, 0, 1, tzinfo=UTC)
    out = []
    for i, line in enumerate(lines):
        stamp = (start + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        if envelope == "bare":
            out.append(line)
        elif envelope == "compose":
            out.append(f"api-1  | {line}")
        elif envelope == "compose -t":
            out.append(f"api-1  | {stamp} {line}")
        elif envelope == "docker":
            record = {"log": line + "\n", "stream": "stdout", "time": stamp}
            out.append(json.dumps(record, separators=(",", ":")))
        else:
            out.append(f"{stamp} stdout F {line}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("envelope", ["bare", "compose", "compose -t", "docker", "cri"])
@pytest.mark.parametrize("fmt", sorted(ISSUE_LINES))
def test_issue_lines_become_conflicts_in_every_envelope(
    fmt: str, envelope: str, tmp_path: Path
) -> None:
    if fmt != "uvicorn" and envelope == "compose -t":
        pytest.skip("only uvicorn lines lack a time of their own")
    log = tmp_path / f"{fmt}.log"
    log.write_text(_wrap(envelope, ISSUE_LINES[fmt]))
    db = tmp_path / "db.duckdb"
    settings = load_settings(db=db, env={})
    with Store.open(db) as store:
        report = Ingester(store, settings).ingest(expand_paths([str(log)]))
    (file,) = report.files
    assert file.format == fmt
    assert file.envelope == (None if envelope == "bare" else envelope.split()[0])
    con = duckdb.connect(str(db), read_only=True)
    try:
        got: list[Any] = con.execute(
            "SELECT method, path, status, message, cause FROM conflicts"
        ).fetchall()
    finally:
        con.close()
    assert [g[:3] for g in got] == [(*ISSUE_REQUEST[fmt], 409)]
    if fmt == "rails":
        assert "ActiveRecord::StaleObjectError" in got[0][3]
        assert got[0][4] == "version_mismatch"


def test_a_started_line_read_before_its_completed_is_not_lost(tmp_path: Path) -> None:
    # What `watch` sees: the file grows between two reads, the Completed in the second one.
    log = tmp_path / "production.log"
    db = tmp_path / "w.duckdb"
    settings = load_settings(db=db, env={})
    earlier = [
        'Started GET "/orders/7" for 10.0.0.5 at 2026-09-09 23:58:00 +0000',
        "Completed 200 OK in 4ms (Views: 1.0ms)",
    ]
    log.write_text("\n".join(earlier + RAILS_REQUEST[:2]) + "\n")
    with Store.open(db) as store:
        first = Ingester(store, settings).ingest(expand_paths([str(log)]))
    assert (first.files[0].format, first.files[0].parsed, first.files[0].skipped) == ("rails", 1, 3)
    log.write_text("\n".join(earlier + RAILS_REQUEST) + "\n")
    with Store.open(db) as store:
        second = Ingester(store, settings).ingest(expand_paths([str(log)]))
    assert (second.files[0].parsed, second.files[0].rejected) == (1, 0)
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = con.execute("SELECT line, method, path, message, cause FROM conflicts").fetchall()
    finally:
        con.close()
    assert got == [
        (7, "PUT", "/orders/7",
         "ActiveRecord::StaleObjectError (Attempted to update a stale object: Order.)",
         "version_mismatch"),
    ]  # fmt: skip
