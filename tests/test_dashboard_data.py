"""Dashboard test data: a factory for real databases (through Store batches and the classifier),
and the read queries of ingest.reads checked against plain SQL over the raw rows."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conflictradar.ingest import reads
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.reader import DirectReader
from conflictradar.ingest.reads import Drill, Filters
from conflictradar.ingest.rows import Batch, FileRecord
from conflictradar.ingest.settings import Settings, SqlSettings
from conflictradar.ingest.store import Store

NEWEST = datetime(2025, 6, 3, 12, 0, 0, tzinfo=UTC)
FILES = ("/logs/gw-a.log", "/logs/gw-b.log")
HOSTS = {"/logs/gw-a.log": "api-a.example.com", "/logs/gw-b.log": "api-b.example.com"}
UA = "shop-client/2.1"


def _row(
    ts: datetime,
    file: str,
    ip: str,
    method: str,
    path: str,
    endpoint: str,
    status: int,
    message: str | None = None,
    upstream: int | None = None,
    ua: str = UA,
) -> dict:
    return {
        "ts": ts,
        "file": file,
        "format": "combined",
        "host": HOSTS[file],
        "client_ip": ip,
        "user_agent": ua,
        "method": method,
        "path": path,
        "query": None,
        "endpoint": endpoint,
        "status": status,
        "upstream_status": upstream,
        "bytes": 120,
        "duration_ms": 12.5,
        "request_id": None,
        "message": message,
    }


def generate(newest: datetime = NEWEST, hours: int = 48, seed: int = 7) -> list[dict]:
    """Requests over `hours` ending at `newest`: background traffic plus 409s of every cause,
    and a burst of races on /orders/{id} in the last 20 minutes."""
    rnd = random.Random(seed)
    rows: list[dict] = []
    start = newest - timedelta(hours=hours)

    def at(minute: float) -> datetime:
        return start + timedelta(minutes=minute)

    span = hours * 60 - 1
    for i in range(1500):  # background reads
        f = FILES[i % 2]
        n = rnd.randint(1, 40)
        rows.append(
            _row(
                at(rnd.uniform(0, span)),
                f,
                f"10.0.0.{rnd.randint(1, 60)}",
                "GET",
                f"/orders/{n}",
                "/orders/{id}",
                200,
            )
        )
        if i % 3 == 0:
            rows.append(
                _row(
                    at(rnd.uniform(0, span)),
                    f,
                    f"10.0.1.{rnd.randint(1, 30)}",
                    "GET",
                    f"/users/u{n}",
                    "/users/{id}",
                    rnd.choice([200, 200, 404]),
                )
            )
    for i in range(60):  # lost races: a write by one client, a PUT by another 2 s later
        t, f, n = at(rnd.uniform(0, span - 5)), FILES[i % 2], rnd.randint(1, 40)
        rows.append(_row(t, f, "10.0.2.1", "PATCH", f"/orders/{n}", "/orders/{id}", 200))
        rows.append(
            _row(
                t + timedelta(seconds=2),
                FILES[(i + 1) % 2],
                "10.0.2.2",
                "PUT",
                f"/orders/{n}",
                "/orders/{id}",
                409,
            )
        )
    for i in range(40):  # retries of a capture that already succeeded
        t, f, n = at(rnd.uniform(0, span - 5)), FILES[i % 2], 500 + i
        rows.append(
            _row(t, f, "10.0.3.7", "POST", f"/payments/p{n}/capture", "/payments/{id}/capture", 200)
        )
        rows.append(
            _row(
                t + timedelta(seconds=3),
                f,
                "10.0.3.7",
                "POST",
                f"/payments/p{n}/capture",
                "/payments/{id}/capture",
                409,
            )
        )
    kinds = [
        ("PATCH", "/users/u{n}", "/users/{id}", "Stale version 12; reload the user", None),
        ("POST", "/orders", "/orders", "Order already exists", None),
        ("POST", "/orders/{n}/items", "/orders/{id}/items", "Order is locked by a checkout", None),
        ("POST", "/carts/c{n}/checkout", "/carts/{id}/checkout", None, None),
        ("POST", "/payments", "/payments", None, 200),
        ("GET", "/users/u{n}", "/users/{id}", None, None),
    ]
    for i in range(120):
        method, path, endpoint, message, upstream = kinds[i % len(kinds)]
        n = rnd.randint(1, 40)
        rows.append(
            _row(
                at(rnd.uniform(0, span)),
                FILES[i % 2],
                f"10.0.4.{i % 9}",
                method,
                path.format(n=n),
                endpoint,
                409,
                message,
                upstream,
            )
        )
    for i in range(25):  # a recent burst: races in the last 20 minutes
        t = newest - timedelta(minutes=19) + timedelta(seconds=40 * i)
        rows.append(_row(t, FILES[0], "10.0.5.1", "PATCH", "/orders/7", "/orders/{id}", 200))
        rows.append(
            _row(
                t + timedelta(seconds=1),
                FILES[1],
                "10.0.5.2",
                "PUT",
                "/orders/7",
                "/orders/{id}",
                409,
            )
        )
    rows.append(_row(newest, FILES[0], "10.0.0.1", "GET", "/orders/1", "/orders/{id}", 200))
    return rows


def commit(store: Store, rows: list[dict], settings: Settings) -> None:
    """Commit rows the way ingest does: one batch per file, lines numbered after the stored ones,
    rollups and causes maintained inside the batch's transaction."""
    classifier = Classifier(settings.classify)
    df = pl.DataFrame(
        rows,
        schema_overrides={
            "ts": pl.Datetime("us", "UTC"),
            "status": pl.Int16,
            "upstream_status": pl.Int16,
            "query": pl.String,
            "request_id": pl.String,
            "message": pl.String,
        },
    )
    for file in sorted(set(df["file"].to_list())):
        part = df.filter(pl.col("file") == file).sort("ts")
        row = store.con.execute(
            "SELECT coalesce(max(line), 0) FROM requests WHERE file = ?", [file]
        ).fetchone()
        first = int(row[0]) + 1 if row else 1
        part = part.with_columns(line=pl.int_range(first, first + part.height, dtype=pl.Int64))
        part = part.select(REQUEST_COLUMNS)
        conflicts = part.filter(pl.col("status") == 409).select(
            "file",
            "line",
            "ts",
            raw=pl.format(
                '{} - - [{}] "{} {} HTTP/1.1" 409 120',
                pl.col("client_ip"),
                pl.col("ts").dt.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                pl.col("method"),
                pl.col("path"),
            ),
        )
        rejects = pl.DataFrame(
            schema={"file": pl.String, "line": pl.Int64, "reason": pl.String, "raw": pl.String}
        )
        record = FileRecord(
            file_id=store.next_file_id(),
            path=file,
            dev=None,
            inode=None,
            fp_len=0,
            fp_hash="x",
            read_offset=0,
            lines=first + part.height - 1,
            tail_start=None,
            tail_line=None,
            format="combined",
            envelope=None,
            parser_state=None,
            compressed=False,
        )
        store.commit_batch(Batch(part, rejects, conflicts, record), after=classifier.classify_range)


def build_db(path: Path, rows: list[dict] | None = None) -> Path:
    settings = Settings(db=path)
    with Store.open(path) as store:
        commit(store, generate() if rows is None else rows, settings)
    return path


def raw(path: Path, sql: str, params: object = None) -> list[tuple]:
    """Plain SQL over the raw tables, independent of the dashboard's reads."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("reads") / "sample.duckdb")


@pytest.fixture(scope="module")
def reader(db: Path) -> DirectReader:
    return DirectReader(db, SqlSettings())


def _all(reader: DirectReader) -> Filters:
    status = reads.data_status(reader)
    assert status.oldest is not None and status.newest is not None
    return Filters(status.oldest, status.newest + timedelta(minutes=1))


def test_status_reports_counts_and_bounds(db: Path, reader: DirectReader) -> None:
    status = reads.data_status(reader)
    assert status.has_schema
    assert status.requests == raw(db, "SELECT count(*) FROM requests")[0][0]
    assert status.conflicts == raw(db, "SELECT count(*) FROM requests WHERE status = 409")[0][0]
    assert status.newest == NEWEST
    assert status.oldest == NEWEST - timedelta(hours=48)


def test_every_cause_is_present(db: Path) -> None:
    causes = {c for (c,) in raw(db, "SELECT DISTINCT cause FROM conflicts")}
    assert causes == {
        "concurrent_update",
        "retry_after_success",
        "version_mismatch",
        "duplicate_create",
        "resource_locked",
        "state_conflict",
        "gateway_conflict",
        "unknown",
    }


@pytest.mark.parametrize("hours", [None, 1, 6])
def test_kpis_match_raw_sql(db: Path, reader: DirectReader, hours: int | None) -> None:
    f = _all(reader)
    if hours is not None:
        f = replace(f, start=f.end - timedelta(hours=hours))
    k = reads.kpis(reader, f).row(0, named=True)
    window = [f.start, f.end]
    req, con, ips = raw(
        db,
        "SELECT count(*), count(*) FILTER (WHERE status = 409),"
        " count(DISTINCT (client_ip, user_agent)) FILTER (WHERE status = 409)"
        " FROM requests WHERE ts >= ? AND ts < ?",
        window,
    )[0]
    assert (k["requests"], k["conflicts"], k["clients"]) == (req, con, ips)
    assert k["rate"] == pytest.approx(con / req)
    top = raw(
        db,
        "SELECT cause FROM conflicts WHERE ts >= ? AND ts < ? GROUP BY cause"
        " ORDER BY count(*) DESC, cause LIMIT 1",
        window,
    )
    assert k["top_cause"] == top[0][0]


def test_filters_narrow_every_dimension(db: Path, reader: DirectReader) -> None:
    f = replace(_all(reader), files=(FILES[1],), methods=("PUT",), causes=("concurrent_update",))
    k = reads.kpis(reader, f).row(0, named=True)
    expect = raw(
        db,
        "SELECT count(*) FROM conflicts WHERE file = ? AND method = 'PUT'"
        " AND cause = 'concurrent_update'",
        [FILES[1]],
    )[0][0]
    assert k["conflicts"] == expect > 0
    assert (
        k["requests"]
        == raw(db, "SELECT count(*) FROM requests WHERE file = ? AND method = 'PUT'", [FILES[1]])[
            0
        ][0]
    )
    rows = reads.conflict_rows(reader, f, limit=5)
    assert rows["total"][0] == expect and rows.height == 5


def test_rollup_reads_agree_with_raw_rows(db: Path, reader: DirectReader) -> None:
    f = _all(reader)
    total = raw(db, "SELECT count(*) FROM conflicts")[0][0]
    assert reads.timeline(reader, f)["conflicts"].sum() == total
    assert reads.endpoint_causes(reader, f)["conflicts"].sum() == total
    shares = reads.cause_shares(reader, f)
    expect = raw(db, "SELECT cause, count(*) FROM conflicts GROUP BY cause ORDER BY 2 DESC, 1")
    assert list(zip(shares["cause"], shares["conflicts"], strict=True)) == expect
    assert shares["share"].sum() == pytest.approx(1.0)
    top = reads.top_endpoints(reader, f)
    assert (
        top.row(0)[:2]
        == raw(
            db, "SELECT endpoint, count(*) FROM conflicts GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        )[0]
    )
    heat = reads.endpoint_heatmap(reader, f)
    assert heat["conflicts"].sum() == total  # fewer than 15 endpoints: all are in the map


def test_drill_and_detail(db: Path, reader: DirectReader) -> None:
    f = _all(reader)
    rows = reads.conflict_rows(reader, f, Drill(path="/orders/7"))
    assert (
        rows["total"][0] == raw(db, "SELECT count(*) FROM conflicts WHERE path = '/orders/7'")[0][0]
    )
    text = reads.conflict_rows(reader, f, Drill(text="ALREADY EXISTS"))
    assert set(text["cause"]) == {"duplicate_create"}
    first = rows.row(0, named=True)
    detail = reads.conflict_detail(reader, first["file"], first["line"]).row(0, named=True)
    assert detail["raw"].startswith("10.0.") and " 409 " in detail["raw"]
    assert detail["remediation"] and detail["evidence"] == first["evidence"]


def test_filters_sql_is_the_same_selection(db: Path, reader: DirectReader) -> None:
    f = replace(_all(reader), endpoints=("/orders/{id}", "/o'quote"), causes=("concurrent_update",))
    sql = reads.filters_sql(f).replace("LIMIT 500", "")
    assert len(reader.user_query(sql).table) == reads.conflict_rows(reader, f)["total"][0]


def test_filters_are_whole_minutes() -> None:
    f = Filters(
        datetime(2025, 1, 1, 10, 0, 30, tzinfo=UTC), datetime(2025, 1, 1, 10, 5, 1, tzinfo=UTC)
    )
    assert (f.start.minute, f.start.second, f.end.minute, f.end.second) == (0, 0, 6, 0)
    assert f.previous().end == f.start and f.previous().span == f.span
    assert reads.bucket_seconds(timedelta(hours=1)) == 60
    assert reads.bucket_seconds(timedelta(days=2)) == 3600


def test_cause_examples_are_the_newest_per_cause(db: Path, reader: DirectReader) -> None:
    got = reads.cause_examples(reader, _all(reader), per_cause=2)
    expect = raw(db, "SELECT cause, ts, file, line FROM conflicts QUALIFY row_number() OVER"
                     " (PARTITION BY cause ORDER BY ts DESC, file DESC, line DESC) <= 2"
                     " ORDER BY cause, ts DESC, file, line")  # fmt: skip
    assert list(got.select("cause", "ts", "file", "line").iter_rows()) == expect
    assert got.columns == ["cause", "ts", "method", "path", "evidence", "file", "line"]


def test_top_resources_and_clients_equal_sql(db: Path, reader: DirectReader) -> None:
    f = _all(reader)
    res = reads.top_resources(reader, f, limit=5)
    expect = raw(db, "SELECT path, count(*), count(DISTINCT client_ip) FROM conflicts"
                     " GROUP BY path ORDER BY 2 DESC, 1 LIMIT 5")  # fmt: skip
    assert list(res.select("path", "conflicts", "clients").iter_rows()) == expect
    cli = reads.top_clients(reader, f, limit=5)
    expect = raw(db, "SELECT client_ip, user_agent, count(*) FROM conflicts"
                     " GROUP BY ALL ORDER BY 3 DESC, 1, 2 LIMIT 5")  # fmt: skip
    assert list(cli.select("client_ip", "user_agent", "conflicts").iter_rows()) == expect
