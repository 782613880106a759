"""The cause rules of SPEC section 5: every rule, each precedence, both edges of each window."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from conflictradar.ingest.classify import Classifier, keyword_pattern
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.settings import ClassifySettings, load_settings
from conflictradar.ingest.store import Store

T0 = datetime(2025, 6, 2, 10, 0, 0, tzinfo=UTC)
UA = "sdk/1.0"


@dataclass(frozen=True)
class Req:
    at: float  # seconds after T0
    method: str
    path: str
    status: int
    ip: str = "198.51.100.7"
    ua: str | None = UA
    upstream: int | None = None
    message: str | None = None
    file: str = "/logs/gw-a.log"
    line: int = 0
    rid: str | None = None  # request id
    fmt: str = "json"  # a service format; gateway formats: envoy, combined, ...


def rows(reqs: list[Req]) -> pl.DataFrame:
    data = []
    for i, r in enumerate(reqs):
        data.append(
            {
                "ts": T0 + timedelta(seconds=r.at),
                "file": r.file,
                "line": r.line or i + 1,
                "format": r.fmt,
                "host": None,
                "client_ip": r.ip,
                "user_agent": r.ua,
                "method": r.method,
                "path": r.path,
                "query": None,
                "endpoint": r.path,
                "status": r.status,
                "upstream_status": r.upstream,
                "bytes": 10,
                "duration_ms": 1.0,
                "request_id": r.rid,
                "message": r.message,
            }
        )
    return pl.DataFrame(data).with_columns(
        pl.col("ts").dt.cast_time_unit("us"),
        pl.col("status").cast(pl.Int16),
        pl.col("upstream_status").cast(pl.Int16),
        pl.col(["host", "query", "request_id", "message", "user_agent"]).cast(pl.String),
    )


def classify(tmp_path: Path, reqs: list[Req], settings: ClassifySettings | None = None,
             batches: int = 1) -> list[tuple[str, str]]:  # fmt: skip
    """Store the requests (optionally in several batches) and return (cause, evidence) of 409s."""
    frame = rows(reqs).select(REQUEST_COLUMNS)
    classifier = Classifier(settings or ClassifySettings())
    with Store.open(tmp_path / f"c{uuid.uuid4().hex}.duckdb") as store:
        size = max(1, -(-frame.height // batches))
        for part in frame.iter_slices(size):
            with store.transaction() as con:
                con.register("part", part.to_arrow())
                con.execute("INSERT INTO requests SELECT * FROM part")
                classifier.classify_range(con, part["ts"].min(), part["ts"].max())  # type: ignore[arg-type]
        out = store.con.execute(
            "SELECT cause, evidence FROM conflicts ORDER BY ts, file, line"
        ).fetchall()
    return [(str(c), str(e)) for c, e in out]


def cause_of_last(tmp_path: Path, reqs: list[Req], **kw: object) -> str:
    found = classify(tmp_path, reqs, **kw)  # type: ignore[arg-type]
    assert found, "no conflict classified"
    return found[-1][0]


CASES = [
    # (id, requests, expected cause of the last 409)
    ("gateway: upstream 200", [Req(0, "PUT", "/o/1", 409, upstream=200)], "gateway_conflict"),
    ("gateway: upstream 502", [Req(0, "POST", "/o", 409, upstream=502)], "gateway_conflict"),
    ("gateway: upstream 409 is the service", [Req(0, "PUT", "/o/1", 409, upstream=409)],
     "version_mismatch"),
    ("gateway beats retry", [Req(0, "POST", "/o", 201), Req(1, "POST", "/o", 409, upstream=200)],
     "gateway_conflict"),
    ("retry: same client 2xx 1 s before", [Req(0, "POST", "/o", 201), Req(1, "POST", "/o", 409)],
     "retry_after_success"),
    ("retry: edge exactly 30 s", [Req(0, "POST", "/o", 201), Req(30, "POST", "/o", 409)],
     "retry_after_success"),
    ("retry: just outside 30.001 s", [Req(0, "POST", "/o", 201), Req(30.001, "POST", "/o", 409)],
     "duplicate_create"),
    ("retry: same instant (0 s)", [Req(5, "POST", "/o", 201), Req(5, "POST", "/o", 409)],
     "retry_after_success"),
    ("retry: 2xx after the 409 does not count",
     [Req(0, "POST", "/o", 409), Req(1, "POST", "/o", 201)], "duplicate_create"),
    ("retry: different method", [Req(0, "PUT", "/o/1", 200), Req(1, "POST", "/o/1", 409)],
     "duplicate_create"),
    ("retry: different user agent is another client",
     [Req(0, "POST", "/o", 201, ua="curl/8"), Req(1, "POST", "/o", 409)], "duplicate_create"),
    ("retry: a 4xx before is no success",
     [Req(0, "POST", "/o", 400), Req(1, "POST", "/o", 409)], "duplicate_create"),
    ("retry beats race",
     [Req(0, "PUT", "/o/1", 200, ip="203.0.113.9"), Req(0.5, "PUT", "/o/1", 200),
      Req(1, "PUT", "/o/1", 409)], "retry_after_success"),
    ("race: other client's PATCH 2xx 1.8 s before",
     [Req(0, "PATCH", "/o/42", 200, ip="203.0.113.9"), Req(1.8, "PATCH", "/o/42", 409)],
     "concurrent_update"),
    ("race: edge exactly 5 s",
     [Req(0, "PUT", "/o/42", 200, ip="203.0.113.9"), Req(5, "PUT", "/o/42", 409)],
     "concurrent_update"),
    ("race: just outside 5.001 s",
     [Req(0, "PUT", "/o/42", 200, ip="203.0.113.9"), Req(5.001, "PUT", "/o/42", 409)],
     "version_mismatch"),
    ("race: winner was a POST write",
     [Req(0, "POST", "/o/42", 201, ip="203.0.113.9"), Req(1, "DELETE", "/o/42", 409)],
     "concurrent_update"),
    ("race: a GET is no write",
     [Req(0, "GET", "/o/42", 200, ip="203.0.113.9"), Req(1, "PUT", "/o/42", 409)],
     "version_mismatch"),
    ("race: POST losers are not races",
     [Req(0, "POST", "/o/42", 201, ip="203.0.113.9"), Req(1, "POST", "/o/42", 409)],
     "duplicate_create"),
    ("race: same client is not a race (different method)",
     [Req(0, "PATCH", "/o/42", 200), Req(1, "PUT", "/o/42", 409)], "version_mismatch"),
    ("race: same IP, other user agent is another client",
     [Req(0, "PATCH", "/o/42", 200, ua="other/2"), Req(1, "PUT", "/o/42", 409)],
     "concurrent_update"),
    ("race: other path", [Req(0, "PUT", "/o/41", 200, ip="203.0.113.9"),
                          Req(1, "PUT", "/o/42", 409)], "version_mismatch"),
    ("race beats message", [Req(0, "PUT", "/o/42", 200, ip="203.0.113.9"),
                            Req(1, "PUT", "/o/42", 409, message="resource is locked")],
     "concurrent_update"),
    ("message: version", [Req(0, "PUT", "/o/1", 409, message="Version conflict")],
     "version_mismatch"),
    ("message: etag", [Req(0, "POST", "/o", 409, message="ETag mismatch")], "version_mismatch"),
    ("message: precondition", [Req(0, "POST", "/o", 409, message="precondition failed")],
     "version_mismatch"),
    ("message: duplicate", [Req(0, "PUT", "/o/1", 409, message="Resource already exists")],
     "duplicate_create"),
    ("message: unique", [Req(0, "PATCH", "/o/1", 409, message="violates UNIQUE constraint")],
     "duplicate_create"),
    ("message: locked", [Req(0, "POST", "/o", 409, message="Order is locked")],
     "resource_locked"),
    ("message: lock at word start", [Req(0, "POST", "/o", 409, message="row lock timeout")],
     "resource_locked"),
    ("message: blocked is not lock", [Req(0, "PUT", "/o/1", 409, message="blocked by policy")],
     "version_mismatch"),
    ("message: busy", [Req(0, "DELETE", "/o/1", 409, message="server busy")], "resource_locked"),
    ("message: being processed", [Req(0, "PUT", "/o/1", 409, message="Payment being processed")],
     "resource_locked"),
    ("message: transition",
     [Req(0, "POST", "/o", 409, message="cannot transition from shipped to cancelled")],
     "state_conflict"),
    ("message: already paid", [Req(0, "PUT", "/o/1", 409, message="Invoice already paid")],
     "state_conflict"),
    ("message: version wins over duplicate",
     [Req(0, "POST", "/o", 409, message="duplicate version")], "version_mismatch"),
    ("message: '-' is absent", [Req(0, "POST", "/o", 409, message="-")], "duplicate_create"),
    ("message: no keyword falls through", [Req(0, "POST", "/o", 409, message="nope")],
     "duplicate_create"),
    ("action: POST /cancel", [Req(0, "POST", "/orders/1/cancel", 409)], "state_conflict"),
    ("action: trailing slash", [Req(0, "POST", "/orders/1/Approve/", 409)], "state_conflict"),
    ("action: PUT /cancel is not an action", [Req(0, "PUT", "/orders/1/cancel", 409)],
     "version_mismatch"),
    ("message beats action", [Req(0, "POST", "/o/1/pay", 409, message="ETag stale")],
     "version_mismatch"),
    ("fallback: POST", [Req(0, "POST", "/orders", 409)], "duplicate_create"),
    ("fallback: PATCH", [Req(0, "PATCH", "/orders/1", 409)], "version_mismatch"),
    ("fallback: DELETE", [Req(0, "DELETE", "/orders/1", 409)], "state_conflict"),
    ("fallback: GET", [Req(0, "GET", "/orders/1", 409)], "unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("reqs", "cause"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(tmp_path: Path, reqs: list[Req], cause: str) -> None:
    assert cause_of_last(tmp_path, reqs) == cause


def test_evidence_names_the_winner(tmp_path: Path) -> None:
    reqs = [
        Req(0.2, "PATCH", "/orders/42", 200, ip="198.51.100.7", file="/l/gw-b.log", line=1033),
        Req(2.0, "PATCH", "/orders/42", 409, ip="203.0.113.5"),
    ]
    ((cause, evidence),) = classify(tmp_path, reqs)
    assert cause == "concurrent_update"
    assert evidence == (
        "lost a race: 198.51.100.7 PATCH /orders/42 got 200 at 10:00:00.200Z, 1.8 s earlier"
        " (gw-b.log:1033)"
    )


def test_evidence_quotes_message(tmp_path: Path) -> None:
    ((_cause, evidence),) = classify(
        tmp_path, [Req(0, "PUT", "/o/1", 409, message="ETag mismatch")]
    )
    assert evidence == 'the service\'s error text "ETag mismatch" (gw-a.log:1) matched "etag"'


def test_retry_evidence(tmp_path: Path) -> None:
    reqs = [Req(0, "POST", "/pay", 201, file="/l/a.log", line=7), Req(2.5, "POST", "/pay", 409)]
    ((cause, evidence),) = classify(tmp_path, reqs)
    assert cause == "retry_after_success"
    assert (
        "same client 198.51.100.7 got 201 for POST /pay at 10:00:00Z, 2.5 s earlier (a.log:7)"
        in evidence
    )


def test_winner_arriving_in_a_later_batch_relabels(tmp_path: Path) -> None:
    """The loser's line is stored first; the winner (another node) comes in a later batch."""
    loser = Req(3, "PUT", "/o/7", 409, file="/l/gw-a.log", line=1)
    winner = Req(1, "PUT", "/o/7", 200, ip="203.0.113.9", file="/l/gw-b.log", line=1)
    assert classify(tmp_path, [loser, winner], batches=2)[0][0] == "concurrent_update"


def test_batching_does_not_change_causes(tmp_path: Path) -> None:
    reqs = [c for case in CASES for c in case[1]]
    # Spread the cases in time so they do not interact, then shuffle the order of arrival.
    spread = [replace(r, at=r.at + 100 * i, line=i + 1) for i, r in enumerate(reqs)]
    one = classify(tmp_path, spread)
    import random

    shuffled = spread[:]
    random.Random(7).shuffle(shuffled)
    many = classify(tmp_path, shuffled, batches=9)
    assert sorted(one) == sorted(many)


def test_windows_and_lists_are_configurable(tmp_path: Path) -> None:
    cfg = tmp_path / "conflictradar.toml"
    cfg.write_text(
        '[classify]\nrace_window = "10s"\nretry_window = "1m"\naction_verbs = ["ship"]\n'
        '[classify.keywords]\nresource_locked = ["frozen"]\n'
    )
    s = load_settings(config=cfg, env={}).classify
    assert (
        cause_of_last(
            tmp_path,
            [Req(0, "PUT", "/o/1", 200, ip="203.0.113.9"), Req(9, "PUT", "/o/1", 409)],
            settings=s,
        )
        == "concurrent_update"
    )
    assert (
        cause_of_last(tmp_path, [Req(0, "POST", "/o", 201), Req(59, "POST", "/o", 409)], settings=s)
        == "retry_after_success"
    )
    assert (
        cause_of_last(tmp_path, [Req(0, "POST", "/o/1/ship", 409)], settings=s) == "state_conflict"
    )
    assert (
        cause_of_last(tmp_path, [Req(0, "POST", "/o/1/cancel", 409)], settings=s)
        == "duplicate_create"
    )
    assert (
        cause_of_last(tmp_path, [Req(0, "PUT", "/o/1", 409, message="account frozen")], settings=s)
        == "resource_locked"
    )
    assert (
        cause_of_last(tmp_path, [Req(0, "PUT", "/o/1", 409, message="row locked")], settings=s)
        == "version_mismatch"
    )


def test_keyword_pattern_word_start() -> None:
    import re

    pat = re.compile(keyword_pattern(("lock", "busy")))
    assert pat.search("row lock")
    assert pat.search("lock")
    assert not pat.search("blocked")
    assert pat.search("so busy")
