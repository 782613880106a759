"""One request across tiers (SPEC 3 and 5): a gateway line and the service line of the same
request id are one request, explained from both, counted once, whatever order they arrive in."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.rows import minute_rollup
from conflictradar.ingest.settings import ClassifySettings, load_settings
from conflictradar.ingest.store import Store
from tests.test_classify import Req, rows

GW, SVC = "/l/gw-a.log", "/l/orders-svc.jsonl"


def gw(at: float, method: str, path: str, status: int, rid: str, **kw: object) -> Req:
    return Req(at, method, path, status, rid=rid, fmt="envoy", file=GW, **kw)  # type: ignore[arg-type]


def svc(at: float, method: str, path: str, status: int, rid: str, **kw: object) -> Req:
    kw.setdefault("ip", "10.0.0.2")  # the gateway pod, as a service behind it sees it
    return Req(at, method, path, status, rid=rid, fmt="ecs", file=SVC, **kw)  # type: ignore[arg-type]


def store_all(tmp_path: Path, reqs: list[Req], batches: int = 1) -> duckdb.DuckDBPyConnection:
    """Store lines batch by batch (rollup included), classifying after each, as watch does."""
    frame = rows(reqs).select(REQUEST_COLUMNS)
    classifier = Classifier(ClassifySettings())
    store = Store.open(tmp_path / f"t{uuid.uuid4().hex}.duckdb")
    size = max(1, -(-frame.height // batches))
    for part in frame.iter_slices(size):
        with store.transaction() as con:
            con.register("part", part.to_arrow())
            con.execute("INSERT INTO requests SELECT * FROM part")
            con.unregister("part")
            con.register("mins", minute_rollup(part).to_arrow())
            con.execute("INSERT INTO request_minutes SELECT * FROM mins")
            con.unregister("mins")
            classifier.classify_range(con, part["ts"].min(), part["ts"].max())  # type: ignore[arg-type]
    return store.con


def conflicts(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "SELECT file, line, cause, confidence, evidence, lines FROM conflicts"
        " ORDER BY ts, file, line"
    ).fetchall()


def counted(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """Requests per status, as every rollup reader sums them."""
    got = con.execute(
        "SELECT status, sum(requests)::BIGINT FROM request_minutes GROUP BY status"
        " HAVING sum(requests) <> 0"
    ).fetchall()
    return {int(s): int(n) for s, n in got}


FLEET = [
    # r1: the service's error text explains the gateway's 409
    svc(0.10, "PUT", "/orders/42", 409, "r1",
        message="ObjectOptimisticLockingFailureException: optimistic locking failed"),
    gw(0.12, "PUT", "/orders/42", 409, "r1", ip="203.0.113.5"),
    # r2: the service created it, the gateway answered 409
    svc(1.10, "POST", "/orders", 201, "r2"),
    gw(1.12, "POST", "/orders", 409, "r2", ip="203.0.113.6"),
    # r3: a 200 seen by both tiers
    svc(2.10, "GET", "/orders/8", 200, "r3"),
    gw(2.12, "GET", "/orders/8", 200, "r3", ip="203.0.113.6"),
    # r4: a winner seen by both tiers, then r5 loses the race against it
    svc(3.00, "PATCH", "/orders/9", 200, "r4"),
    gw(3.02, "PATCH", "/orders/9", 200, "r4", ip="203.0.113.8"),
    svc(4.00, "PATCH", "/orders/9", 409, "r5", message="state machine refused"),
    gw(4.02, "PATCH", "/orders/9", 409, "r5", ip="203.0.113.9"),
    # r6: no error text anywhere
    svc(5.00, "DELETE", "/orders/3", 409, "r6"),
    gw(5.02, "DELETE", "/orders/3", 409, "r6", ip="203.0.113.9"),
    # a line without a request id is a request of its own
    gw(6.00, "POST", "/orders", 409, None, ip="203.0.113.10"),  # type: ignore[arg-type]
]  # fmt: skip


def test_one_row_per_409_request_with_both_lines(tmp_path: Path) -> None:
    con = store_all(tmp_path, FLEET)
    got = conflicts(con)
    assert [(f, line, cause, conf) for f, line, cause, conf, _e, _l in got] == [
        (GW, 2, "version_mismatch", "certain"),
        (GW, 4, "gateway_conflict", "certain"),
        (GW, 10, "concurrent_update", "certain"),
        (GW, 12, "state_conflict", "inferred"),
        (GW, 13, "duplicate_create", "inferred"),
    ]
    assert [lines for *_, lines in got][:4] == [
        [f"{GW}:2", f"{SVC}:1"], [f"{GW}:4", f"{SVC}:3"], [f"{GW}:10", f"{SVC}:9"],
        [f"{GW}:12", f"{SVC}:11"],
    ]  # fmt: skip
    evidence = [e for _f, _l, _c, _conf, e, _ in got]
    assert evidence[0] == (
        "the service's error text \"ObjectOptimisticLockingFailureException: optimistic locking"
        ' failed" (orders-svc.jsonl:1): Spring ObjectOptimisticLockingFailureException'
    )
    assert evidence[1].startswith(
        "the gateway answered 409 but the service answered 201 for the same request"
        " (orders-svc.jsonl:3)"
    )
    # the race is between the originating clients, as the gateway saw them
    assert evidence[2].startswith("lost a race: 203.0.113.8 PATCH /orders/9 got 200")
    assert evidence[3].endswith("; no error text")
    # 7 requests (not 13 lines); r2's 201 is the service's, not what its client received
    assert counted(con) == {409: 5, 200: 2}


def test_same_tier_lines_with_one_id_stay_apart(tmp_path: Path) -> None:
    """Two gateway nodes (or a client reusing its id on a retry) are two requests."""
    reqs = [
        gw(0, "POST", "/pay", 201, "same", ip="203.0.113.5"),
        replace(gw(2, "POST", "/pay", 409, "same", ip="203.0.113.5"), file="/l/gw-b.log"),
    ]
    con = store_all(tmp_path, reqs)
    assert [c[2] for c in conflicts(con)] == ["retry_after_success"]
    assert counted(con) == {201: 1, 409: 1}


def test_lines_more_than_the_join_window_apart_stay_apart(tmp_path: Path) -> None:
    con = store_all(tmp_path, [svc(0, "PUT", "/o/1", 200, "r"), gw(61, "PUT", "/o/1", 409, "r")])
    assert [c[2] for c in conflicts(con)] == ["version_mismatch"]


def test_shuffled_arrival_gives_identical_causes_and_counts(tmp_path: Path) -> None:
    """Service lines first, the gateway's minutes late (another host), nine batches."""
    fleet = [replace(r, line=i + 1) for i, r in enumerate(FLEET)]
    at_once = store_all(tmp_path, fleet)
    services = [r for r in fleet if r.file == SVC]
    gateways = [r for r in fleet if r.file == GW]
    random.Random(11).shuffle(services)
    random.Random(12).shuffle(gateways)
    late = store_all(tmp_path, services + gateways, batches=9)
    assert conflicts(late) == conflicts(at_once)
    assert counted(late) == counted(at_once)
    assert late.execute("SELECT count(*) FROM conflicts").fetchone() == (5,)


def test_evidence_quotes_an_unrecognised_text(tmp_path: Path) -> None:
    con = store_all(tmp_path, [svc(0, "POST", "/o", 409, "r", message="computer says no"),
                               gw(0.1, "POST", "/o", 409, "r")])  # fmt: skip
    ((_f, _l, cause, confidence, evidence, _),) = conflicts(con)
    assert (cause, confidence) == ("duplicate_create", "inferred")
    assert 'unrecognised error text: "computer says no" (the service\'s, orders-svc.jsonl:1)' in (
        evidence
    )
    assert "no error text" not in evidence


def test_gateway_and_service_logs_ingested_as_files(tmp_path: Path) -> None:
    """An Envoy gateway log and the ECS log of the service behind it, for the same requests:
    `count(*)` equals the 409 requests, each row names both lines, the client is the user."""
    gw_log, svc_log = tmp_path / "gw.log", tmp_path / "svc.jsonl"
    gw_log.write_text(
        '[2025-06-02T10:00:00.120Z] "PUT /orders/42 HTTP/1.1" 409 - 120 80 12 11 "203.0.113.5"'
        ' "sdk/1.0" "r1" "api.example.com" "10.0.0.9:8080"\n'
        '[2025-06-02T10:00:01.120Z] "POST /orders HTTP/1.1" 409 - 120 80 12 11 "203.0.113.6"'
        ' "sdk/1.0" "r2" "api.example.com" "10.0.0.9:8080"\n'
    )
    svc_log.write_text(
        '{"@timestamp":"2025-06-02T10:00:00.100Z","error":{"message":"E11000 duplicate key'
        ' error collection: shop.orders index: ref_1"},"http":{"request":{"method":"PUT",'
        '"id":"r1"},"response":{"status_code":409}},"url":{"path":"/orders/42"},'
        '"client":{"ip":"203.0.113.5"},"source":{"ip":"10.0.0.2"}}\n'
        '{"@timestamp":"2025-06-02T10:00:01.100Z","http":{"request":{"method":"POST","id":"r2"},'
        '"response":{"status_code":201}},"url":{"path":"/orders"},"source":{"ip":"10.0.0.2"}}\n'
    )
    db = tmp_path / "fleet.duckdb"
    with Store.open(db) as store:
        report = Ingester(store, load_settings(db=db, env={})).ingest([svc_log, gw_log])
        con = store.con
        assert con.execute("SELECT count(*) FROM conflicts").fetchone() == (2,)
        # The summary: three 409 lines (the second service line is not one) are two requests.
        assert (report.total("conflicts"), report.new_conflicts) == (3, 2)
        got = con.execute("SELECT cause, lines FROM conflicts ORDER BY ts").fetchall()
        assert got == [
            ("duplicate_create", [f"{gw_log}:1", f"{svc_log}:1"]),
            ("gateway_conflict", [f"{gw_log}:2", f"{svc_log}:2"]),
        ]
        assert con.execute(
            "SELECT sum(requests) FROM request_minutes WHERE status = 409"
        ).fetchone() == (2,)
        # ECS `client.ip` is the originating client; `source.ip` is the gateway pod
        assert con.execute("SELECT client_ip FROM requests WHERE file = ?", [str(svc_log)]
                           ).fetchall() == [("203.0.113.5",), ("10.0.0.2",)]  # fmt: skip


NGINX_UPSTREAM = (
    'nginx:\'$remote_addr [$time_local] "$request" $status $upstream_addr $upstream_status'
    " $request_id'"
)


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        # Envoy's `%UPSTREAM_HOST%` logged as `-`.
        (None, '[2025-06-02T10:00:00.120Z] "POST /orders HTTP/1.1" 409 - 120 80 1 - "203.0.113.5"'
               ' "sdk/1.0" "r9" "api.example.com" "-"'),
        # nginx's `$upstream_addr` logged as `-` (a `return 409;` or a Lua/auth check).
        (NGINX_UPSTREAM, '203.0.113.5 [02/Jun/2025:10:00:00 +0000] "POST /orders HTTP/1.1" 409 - -'
                         " r9"),
    ],
    ids=["envoy", "nginx"],
)  # fmt: skip
def test_gateway_that_reached_no_upstream_made_the_409(
    tmp_path: Path, fmt: str | None, line: str
) -> None:
    """The gateway's line shows it reached no upstream: the gateway answered by itself."""
    log, db = tmp_path / "gw.log", tmp_path / "n.duckdb"
    log.write_text(line + "\n")
    with Store.open(db) as store:
        Ingester(store, load_settings(db=db, env={}), forced=fmt).ingest([log])
        ((cause, evidence),) = store.con.execute("SELECT cause, evidence FROM conflicts").fetchall()
    assert cause == "gateway_conflict"
    assert evidence.startswith("the gateway answered 409 without reaching an upstream")
