"""Ingest end to end on real DuckDB files: idempotency, append, truncation, .gz, bad lines, CLI."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from conflictradar.ingest import pipeline, store
from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

LINE = '{ip} - - [10/Oct/2025:13:55:{s:02d} +0200] "{m} /orders/{n}?x=1 HTTP/1.1" {st} 12 "-" "curl/8"\n'


def lines(start: int, count: int, status: int = 200, method: str = "GET") -> str:
    return "".join(
        LINE.format(ip=f"10.0.0.{i % 250}", s=i % 60, m=method, n=i, st=status)
        for i in range(start, start + count)
    )


def ingest(db: Path, *paths: Path | str, fmt: str | None = None) -> dict[str, int]:
    settings = load_settings(db=db, env={})
    with Store.open(db) as store:
        report = Ingester(store, settings, forced=fmt).ingest(expand_paths([str(p) for p in paths]))
    return {
        "parsed": report.total("parsed"),
        "rejected": report.total("rejected"),
        "skipped": report.total("skipped"),
        "lines": report.total("lines"),
        "conflicts": report.total("conflicts"),
    }


def count(db: Path, sql: str = "SELECT count(*) FROM requests") -> object:
    with Store.open(db) as store:
        row = store.con.execute(sql).fetchone()
    return row[0] if row else None


def test_reingest_adds_nothing_and_append_adds_only_new(tmp_path: Path) -> None:
    log, db = tmp_path / "access.log", tmp_path / "db.duckdb"
    log.write_text(lines(0, 100))
    assert ingest(db, log)["parsed"] == 100
    assert ingest(db, log)["parsed"] == 0
    with log.open("a") as fh:
        fh.write(lines(100, 30, status=409, method="PUT"))
    got = ingest(db, log)
    assert got["parsed"] == 30 and got["conflicts"] == 30
    assert count(db) == 130
    assert count(db, "SELECT min(line) FROM requests WHERE status = 409") == 101
    assert count(db, "SELECT count(*) FROM conflicts") == 30


def test_truncated_and_rewritten_file_is_read_from_start(tmp_path: Path) -> None:
    log, db = tmp_path / "access.log", tmp_path / "db.duckdb"
    log.write_text(lines(0, 50))
    ingest(db, log)
    log.write_text(lines(1000, 10))  # copytruncate, then new lines
    assert ingest(db, log)["parsed"] == 10
    assert count(db) == 60
    assert count(db, "SELECT count(*) FROM requests WHERE line <= 10") == 20


def test_rotated_then_compressed_is_not_ingested_twice(tmp_path: Path) -> None:
    logs, db = tmp_path / "logs", tmp_path / "db.duckdb"
    logs.mkdir()
    (logs / "access.log").write_text(lines(0, 500))
    ingest(db, logs)
    os.rename(logs / "access.log", logs / "access.log.1")
    with (
        (logs / "access.log.1").open("rb") as src,
        gzip.open(logs / "access.log.1.gz", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    (logs / "access.log.1").unlink()
    (logs / "access.log").write_text(lines(500, 20))
    got = ingest(db, logs)
    assert got["parsed"] == 20
    assert count(db) == 520


def test_gzip_file_is_read(tmp_path: Path) -> None:
    gz, db = tmp_path / "old.log.gz", tmp_path / "db.duckdb"
    gz.write_bytes(gzip.compress(lines(0, 300).encode()))
    assert ingest(db, gz)["parsed"] == 300
    assert ingest(db, gz)["parsed"] == 0


def test_unterminated_last_line_is_completed_not_duplicated(tmp_path: Path) -> None:
    log, db = tmp_path / "access.log", tmp_path / "db.duckdb"
    full = lines(0, 3)
    log.write_text(full[:-20])  # last line cut mid-way, no newline
    first = ingest(db, log)
    assert first["parsed"] + first["rejected"] == 3
    with log.open("a") as fh:
        fh.write(full[-20:] + lines(3, 2))
    ingest(db, log)
    assert count(db) == 5
    assert count(db, "SELECT count(*) FROM rejects") == 0
    assert (
        count(db, "SELECT string_agg(line::VARCHAR, ',' ORDER BY line) FROM requests")
        == "1,2,3,4,5"
    )


def test_bad_lines_become_rejects_with_reasons(tmp_path: Path) -> None:
    log, db = tmp_path / "access.log", tmp_path / "db.duckdb"
    good = lines(0, 20)
    bad = (
        b"\x00\x01\x02\xff\xfe binary garbage\n"
        + b'10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /caf\xe9 HTTP/1.1" 200 1 "-" "x"\n'
        + b'10.0.0.1 - - [10/Oct/2025:13:55:36 +0200] "GET /trunc\n'
        + b"A" * (1 << 20)
        + b"\n"
        + b"\n"
    )
    log.write_bytes(good.encode() + bad + lines(20, 5).encode())
    got = ingest(db, log)
    assert got["parsed"] == 26  # the invalid-UTF-8 line still parses, with U+FFFD
    assert got["rejected"] == 3
    assert got["skipped"] == 1  # the blank line
    assert count(db, "SELECT path FROM requests WHERE line = 22") == "/caf\ufffd"
    assert count(db, "SELECT max(length(raw)) FROM rejects") == 2048
    assert count(db, "SELECT count(*) FROM rejects WHERE reason IS NULL OR reason = ''") == 0
    assert count(db, "SELECT max(line) FROM requests") == 30


def test_timestamps_with_offsets_are_stored_in_utc(tmp_path: Path) -> None:
    log, db = tmp_path / "access.log", tmp_path / "db.duckdb"
    log.write_text(
        '1.1.1.1 - - [10/Oct/2025:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "x"\n'
        '1.1.1.1 - - [10/Oct/2025:06:55:36 -0500] "GET / HTTP/1.1" 200 1 "-" "x"\n'
    )
    ingest(db, log)
    assert count(db, "SELECT count(DISTINCT ts) FROM requests") == 1
    assert count(db, "SELECT strftime(min(ts), '%Y-%m-%d %H:%M:%S') FROM requests") == (
        "2025-10-10 11:55:36"
    )


def test_race_across_two_nodes_with_different_offsets(tmp_path: Path) -> None:
    a, b, db = tmp_path / "gw-a.log", tmp_path / "gw-b.log", tmp_path / "db.duckdb"
    # Node A (+0200) logs the loser at 12:00:03 UTC; node B (-0500) the winner at 12:00:01 UTC.
    a.write_text(
        '203.0.113.5 - - [02/Jun/2025:14:00:03 +0200] "PATCH /orders/42 HTTP/1.1" 409 0 "-" "a"\n'
    )
    b.write_text(
        '198.51.100.7 - - [02/Jun/2025:07:00:01 -0500] "PATCH /orders/42 HTTP/1.1" 200 9 "-" "b"\n'
    )
    ingest(db, a)  # the loser first: no winner in sight yet
    assert count(db, "SELECT cause FROM conflicts") == "version_mismatch"
    ingest(db, b)  # the winner arrives later, from the other node
    assert count(db, "SELECT cause FROM conflicts") == "concurrent_update"
    assert count(db, "SELECT evidence FROM conflicts") == (
        "lost a race: 198.51.100.7 PATCH /orders/42 got 200 at 12:00:01Z, 2.0 s earlier (gw-b.log:1)"
    )


def test_unrecognised_file_gets_one_clear_line(tmp_path: Path) -> None:
    junk, db = tmp_path / "notes.log", tmp_path / "db.duckdb"
    junk.write_text("hello world\nthis is not an access log\n" * 20)
    proc = run_cli("ingest", str(junk), "--db", str(db))
    assert proc.returncode == 1, proc.stderr  # nothing ingested: cron and CI must notice
    assert "format not recognised; tried" in proc.stderr
    assert "combined" in proc.stderr and "Traceback" not in proc.stderr


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conflictradar", *args],
        capture_output=True, text=True, input=stdin, timeout=120,
        env={**os.environ, "CONFLICTRADAR_DB": ""},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ingest", "/no/such/file.log"], 1, "conflictradar: error: /no/such/file.log does not exist\n"),
        (["ingest", "/no/such/*.log"], 1, "conflictradar: error: no file matches /no/such/*.log\n"),
        (["sql", "SELECT 1", "--db", "/no/such/db.duckdb"], 1,
         "conflictradar: error: database /no/such/db.duckdb does not exist yet; run"
         " `conflictradar ingest PATH` first\n"),
        (["ingest", "x.log", "--format", "nope"], 1, None),
        (["frobnicate"], 2, None),
    ],
)  # fmt: skip
def test_cli_errors(tmp_path: Path, args: list[str], code: int, message: str | None) -> None:
    proc = run_cli(*args)
    assert proc.returncode == code
    assert "Traceback" not in proc.stderr
    if message is not None:
        assert proc.stderr == message


def test_cli_bad_config_names_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[classify]\nrace_windw = "5s"\n')
    proc = run_cli("sql", "SELECT 1", "--config", str(cfg), "--db", str(tmp_path / "x.duckdb"))
    assert proc.returncode == 1
    assert "unknown key classify.race_windw" in proc.stderr


def test_cli_sql_formats(tmp_path: Path) -> None:
    log, db = tmp_path / "access.log", tmp_path / "db.duckdb"
    log.write_text(lines(0, 5, status=409, method="POST"))
    assert run_cli("ingest", str(log), "--db", str(db), "-q").returncode == 0
    csv = run_cli("sql", "SELECT cause, count(*) AS n FROM conflicts GROUP BY 1", "--db", str(db))
    assert csv.stdout == "cause,n\nduplicate_create,5\n"
    js = run_cli("sql", "-", "--db", str(db), "--format", "json",
                 stdin="SELECT line FROM requests ORDER BY line LIMIT 2")  # fmt: skip
    assert js.stdout.strip() == '[{"line": 1}, {"line": 2}]'
    refused = run_cli("sql", "DROP TABLE requests", "--db", str(db))
    assert refused.returncode == 1
    assert refused.stderr.startswith("conflictradar: error: only SELECT queries are allowed")


def assert_rollups_match(db: Path) -> None:
    """The per-minute rollups always equal a fresh aggregation of the raw tables."""
    with Store.open(db) as store:
        diff = store.con.execute(
            "SELECT count(*) FROM ("
            " (SELECT minute, file, endpoint, method, status, sum(requests) n FROM request_minutes"
            "  GROUP BY ALL HAVING sum(requests) <> 0"
            "  EXCEPT SELECT date_trunc('minute', ts), file, endpoint, method, status, count(*)"
            "  FROM requests GROUP BY ALL)"
            " UNION ALL"
            " (SELECT minute, file, endpoint, method, cause, sum(conflicts) FROM conflict_minutes"
            "  GROUP BY ALL EXCEPT SELECT date_trunc('minute', ts), file, endpoint, method, cause,"
            "  count(*) FROM conflicts GROUP BY ALL))"
        ).fetchone()
    assert diff == (0,)


def test_rollups_follow_appends_repairs_and_late_winners(tmp_path: Path) -> None:
    log, other, db = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "db.duckdb"
    full = lines(0, 40, status=409, method="PUT")
    log.write_text(full[:-15])
    ingest(db, log)
    with log.open("a") as fh:
        fh.write(full[-15:] + lines(40, 10))
    ingest(db, log)
    other.write_text(lines(0, 40, status=200, method="PUT").replace("10.0.0.", "10.9.9."))
    ingest(db, other)
    assert count(db, "SELECT count(*) FROM conflicts WHERE cause = 'concurrent_update'") == 40
    assert_rollups_match(db)


MESSAGE_LINES = {
    # format: (file name, one 409 line whose error text decides the cause)
    "apigw errorMessage": (
        "p.jsonl",
        '{"requestId":"r1","ip":"10.2.0.1","requestTime":"02/Jun/2025:08:00:00 +0000",'
        '"httpMethod":"POST","routeKey":"POST /payments","path":"/payments","status":"409",'
        '"responseLength":"10","integrationStatus":"409","errorMessage":"Payment is locked by'
        ' another capture","userAgent":"sdk"}',
        "resource_locked",
    ),
    "ecs error.message (nested) over message": (
        "e.jsonl",
        '{"@timestamp":"2025-06-02T08:00:00Z","message":"request finished","client":{"ip":"1.2.3.4"},'
        '"http":{"request":{"method":"POST"},"response":{"status_code":409}},'
        '"url":{"path":"/invoices"},"error":{"message":"invoice already exists"}}',
        "duplicate_create",
    ),
    "json error field": (
        "j.jsonl",
        '{"time":"2025-06-02T08:00:00Z","remote_addr":"1.2.3.4","method":"PUT","path":"/docs/1",'
        '"status":409,"error":"ETag mismatch"}',
        "version_mismatch",
    ),
    "s3 error code": (
        "s3.log",
        "79a5 acme [02/Jun/2025:12:08:15 +0000] 10.0.0.1 arn:aws:iam::1:user/u 6A53 REST.PUT.OBJECT"
        ' k.pdf "PUT /acme/k.pdf HTTP/1.1" 409 InvalidBucketState 310 - 12 - "-" "aws-cli/2"'
        " - XYZ SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader acme.s3.amazonaws.com TLSv1.2 - -",
        "state_conflict",  # the S3 error code is the message; "state" matches
    ),
}


@pytest.mark.parametrize("case", list(MESSAGE_LINES), ids=list(MESSAGE_LINES))
def test_messages_from_every_field_decide_the_cause(tmp_path: Path, case: str) -> None:
    name, line, cause = MESSAGE_LINES[case]
    log, db = tmp_path / name, tmp_path / "db.duckdb"
    log.write_text(line + "\n")
    got = ingest(db, log)
    assert got["conflicts"] == 1, got
    assert count(db, "SELECT cause FROM conflicts") == cause
    assert count(db, "SELECT evidence FROM conflicts").startswith(
        ("the gateway's error text", "the service's error text")
    )


def test_ranges_left_pending_by_a_crash_are_classified_on_the_next_run(tmp_path: Path) -> None:
    log, db = tmp_path / "a.log", tmp_path / "db.duckdb"
    log.write_text(lines(0, 30, status=409, method="POST"))
    ingest(db, log)
    with Store.open(db) as store:
        # What a run killed between a batch's commit and its classification leaves behind.
        store.con.execute("DELETE FROM conflicts")
        store.con.execute("DELETE FROM conflict_minutes")
        store.con.execute("INSERT INTO classify_pending SELECT min(ts), max(ts) FROM requests")
    assert count(db, "SELECT count(*) FROM conflicts") == 0
    with Store.open(db) as store:
        Ingester(store, load_settings(db=db, env={}))
    assert count(db, "SELECT count(*) FROM conflicts") == 30
    assert count(db, "SELECT count(*) FROM classify_pending") == 0
    assert_rollups_match(db)


def _profiles(start: int, count: int) -> str:
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    return "".join(
        f'10.0.0.1 - - [10/Oct/2025:13:55:{i % 60:02d} +0200] "GET /users/{names[i % 10]}'
        f'{"x" * (i // 10)}/profile HTTP/1.1" 200 5 "-" "c"\n'
        for i in range(start, start + count)
    )


def test_high_cardinality_positions_are_folded_everywhere(tmp_path: Path) -> None:
    first, second, db = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "db.duckdb"
    first.write_text(_profiles(0, 50))  # 50 distinct names: below the threshold of 200
    ingest(db, first)
    assert count(db, "SELECT count(DISTINCT endpoint) FROM requests") == 50
    second.write_text(_profiles(50, 400))  # now the position is clearly an identifier
    ingest(db, second)
    assert (
        count(db, "SELECT string_agg(DISTINCT endpoint, ',') FROM requests")
        == "/users/{id}/profile"
    )
    assert count(db, "SELECT count(*) FROM endpoint_folds") == 1
    assert_rollups_match(db)


def test_folds_learned_from_stored_endpoints_re_template_every_table(tmp_path: Path) -> None:
    # Two files of 150 distinct names each: no block alone reaches the threshold of 200, the
    # endpoints stored together do, and the end-of-run learning folds them where they lie.
    first, second, db = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "db.duckdb"
    first.write_text(_profiles(0, 150))
    ingest(db, first)
    assert count(db, "SELECT count(*) FROM endpoint_folds") == 0
    second.write_text(_profiles(150, 150))
    ingest(db, second)
    assert count(db, "SELECT count(*) FROM endpoint_folds") == 1
    for table in ("requests", "request_minutes"):
        endpoints = count(db, f"SELECT string_agg(DISTINCT endpoint, ',') FROM {table}")
        assert endpoints == "/users/{id}/profile", table
    assert_rollups_match(db)


def _conflicts(db: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT file, line, cause, evidence FROM conflicts ORDER BY file, line"
        ).fetchall()
    finally:
        con.close()


def test_bulk_classification_mid_run_equals_one_pass_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One-shot ingest explains 409s in bulk every CLASSIFY_EVERY_ROWS rows: with small blocks
    # and a tiny cadence it classifies many times mid-run, and must end where one pass ends.
    data = Path(__file__).resolve().parents[1] / "sample_logs" / "data"
    once, often = tmp_path / "once.duckdb", tmp_path / "often.duckdb"
    ingest(once, data)
    monkeypatch.setattr(pipeline, "CLASSIFY_EVERY_ROWS", 500)
    monkeypatch.setenv("CONFLICTRADAR_INGEST_BLOCK_MB", "1")
    passes = []
    bulk = Ingester.classify_pending

    def counted(self: Ingester) -> None:
        passes.append(self.store.con.execute("SELECT count(*) FROM classify_pending").fetchone())
        bulk(self)

    monkeypatch.setattr(Ingester, "classify_pending", counted)
    with Store.open(often) as store:
        settings = load_settings(db=often)
        assert settings.ingest.block_bytes == 1 << 20
        Ingester(store, settings).ingest(expand_paths([str(data)]))
    assert len(passes) >= 5, passes  # several passes mid-run, each over pending ranges
    got, want = _conflicts(often), _conflicts(once)
    assert len(want) > 400
    assert got == want
    assert count(often, "SELECT count(*) FROM classify_pending") == 0
    assert_rollups_match(often)


def test_every_string_shape_survives_the_insert(tmp_path: Path) -> None:
    # Rows reach DuckDB as Arrow string views: short ones inline, long ones in buffers, empty,
    # multi-byte and escaped text; every value must come back byte for byte.
    log, db = tmp_path / "a.log", tmp_path / "db.duckdb"
    agents = ["", "-", "é", "x" * 11, "y" * 12, "z" * 13, "ü€𝄞" * 5, 'q\\"uote', "w" * 5000]
    text = "".join(
        f'10.0.0.{i} - - [10/Oct/2025:13:55:{i:02d} +0000] "GET /p/{"ä" * i} HTTP/1.1" 200 1'
        f' "-" "{agent}"\n'
        for i, agent in enumerate(agents)
    )
    log.write_text(text, encoding="utf-8")
    assert ingest(db, log)["parsed"] == len(agents)
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT path, user_agent FROM requests ORDER BY line").fetchall()
    finally:
        con.close()
    want = [None, None, "é", "x" * 11, "y" * 12, "z" * 13, "ü€𝄞" * 5, 'q"uote', "w" * 5000]
    assert [r[1] for r in rows] == want
    assert [r[0] for r in rows] == [f"/p/{'ä' * i}" for i in range(len(agents))]


def test_thread_settings_nest_and_restore(tmp_path: Path) -> None:
    # Ingest inserts on one thread and classifies mid-run with all of them; the inserts after
    # a mid-run classification must be back on one thread.
    def threads(store: Store) -> int:
        row = store.con.execute("SELECT current_setting('threads')").fetchone()
        return int(row[0]) if row else 0

    with Store.open(tmp_path / "db.duckdb") as store:
        full = threads(store)
        with store.threads(1):
            assert threads(store) == 1
            with store.threads(None):
                assert threads(store) == full
            assert threads(store) == 1
        assert threads(store) == full


def test_small_recycled_blocks_store_what_one_block_stores(tmp_path: Path) -> None:
    # With 1 MB blocks, each block is read into the previous block's buffer (lines cut at block
    # edges, a 3 MB line cut to the limit, invalid UTF-8); every row must equal a one-block read.
    log = tmp_path / "a.log"
    parts = [lines(0, 15000).encode(), b"B" * (3 << 20) + b"\n", b"\xff\xfe bad\n"]
    parts += [lines(15000, 15000, status=409, method="PUT").encode(), b"no newline at the end"]
    log.write_bytes(b"".join(parts))
    whole, small = tmp_path / "whole.duckdb", tmp_path / "small.duckdb"
    want = ingest(whole, log)
    settings = load_settings(db=small, env={"CONFLICTRADAR_INGEST_BLOCK_MB": "1"})
    assert settings.ingest.block_bytes == 1 << 20
    blocks = []
    real_read_blocks = pipeline.read_blocks

    def counted(*args: object, **kwargs: object) -> Iterator[object]:
        for block in real_read_blocks(*args, **kwargs):  # type: ignore[arg-type]
            blocks.append(id(block.data))
            yield block

    with pytest.MonkeyPatch.context() as patch, Store.open(small) as store:
        patch.setattr(pipeline, "read_blocks", counted)
        report = Ingester(store, settings).ingest([log])
    assert len(blocks) > 4 and len(set(blocks)) < len(blocks)  # buffers were reused
    assert (report.total("parsed"), report.total("rejected")) == (30000, 3)
    assert want["parsed"] == 30000 and want["rejected"] == 3
    for sql in (
        "SELECT * FROM requests ORDER BY line",
        "SELECT line, reason, raw FROM rejects ORDER BY line",
        "SELECT line, raw FROM conflict_lines ORDER BY line",
    ):
        assert count(small, f"SELECT md5(string_agg(t::VARCHAR, '|')) FROM ({sql}) t") == count(
            whole, f"SELECT md5(string_agg(t::VARCHAR, '|')) FROM ({sql}) t"
        ), sql


@pytest.mark.parametrize("entry", ["conflictradar.cli", "bench.run_ingest"])
def test_allocator_setting_reaches_polars_before_it_loads(entry: str) -> None:
    # polars appends `_RJEM_MALLOC_CONF` to its own jemalloc defaults when it is imported; the
    # ingest package must have set it by then, from every entry point that parses.
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    code = f"import {entry}, os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    polars_default, ours = out.split(",", 2)[:2], out.split(",", 2)[2]
    assert polars_default[0].startswith("dirty_decay_ms:"), out
    assert ours == "dirty_decay_ms:30000,muzzy_decay_ms:30000", out


def test_a_database_another_process_created_meanwhile_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    with Store.open(db) as theirs:
        theirs.con.execute("INSERT INTO meta VALUES ('made_by', 'them')")
    assert store._create(db) is None  # ours is not put over theirs
    with Store.open(db) as ours:
        assert ours.con.execute("SELECT value FROM meta WHERE key = 'made_by'").fetchall() == [
            ("them",)
        ]
    assert [p.name for p in tmp_path.iterdir()] == ["x.duckdb"]  # no temporary file left


def test_a_new_database_replaced_before_it_is_opened_still_gets_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Created, then swapped for an empty file before the connection opened it: the schema the
    # new file lacks is created then (the create step's own schema is not taken on trust).
    create = store._create

    def create_then_swap(path: Path) -> int | None:
        made = create(path)
        other = path.with_name("other.duckdb")  # made while the first exists: another inode
        duckdb.connect(str(other)).close()
        os.replace(other, path)
        return made

    monkeypatch.setattr(store, "_create", create_then_swap)
    db = tmp_path / "x.duckdb"
    with Store.open(db) as opened:
        assert opened.con.execute("SELECT count(*) FROM causes").fetchone() != (0,)


# Records OPENBLAS_NUM_THREADS as it is when numpy starts to load (OpenBLAS reads it then).
_NUMPY_WATCH = """
import importlib.abc, os, sys
class Watch(importlib.abc.MetaPathFinder):
    seen = "unloaded"
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and Watch.seen == "unloaded":
            Watch.seen = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
        return None
sys.meta_path.insert(0, Watch())
"""


@pytest.mark.parametrize(
    "entry",
    ["conflictradar.cli", "conflictradar.dashboard.launch", "conflictradar.dashboard.server",
     "bench.run_ingest", "bench.parse_cost", "bench.watch_cost", "bench.alert_cost",
     "bench.__main__"],
)  # fmt: skip
@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("3", "3")])
def test_openblas_threads_are_set_before_numpy_loads_unless_the_user_set_them(
    entry: str, given: str | None, expected: str
) -> None:
    # numpy's OpenBLAS reads the variable once, when numpy loads; every entry point must load
    # the conflictradar package (which sets it) first. A value the user set is kept.
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = _NUMPY_WATCH + f"import {entry}, numpy\nprint(Watch.seen)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out[-1:] == [expected], out


def test_retention_prunes_every_table_and_keeps_rollups_exact(tmp_path: Path) -> None:
    # Lines run 13:55:00-13:55:59 (+0200) then 13:56:00-13:56:29; pruning before 11:56:20 UTC
    # cuts at 11:56:00, the start of that minute, in every table at once.
    log, db = tmp_path / "a.log", tmp_path / "db.duckdb"
    old = lines(0, 60, status=409, method="PUT")
    new = lines(0, 30, status=409, method="PUT").replace(":55:", ":56:")
    half = old.splitlines(keepends=True)
    log.write_text(
        "".join(half[:30]) + "garbage one\n" + "".join(half[30:]) + new + "garbage two\n"
    )
    assert ingest(db, log)["rejected"] == 2
    reject_lines = count(db, "SELECT list(line ORDER BY line) FROM rejects")
    with Store.open(db) as store:
        pruned = store.prune(datetime(2025, 10, 10, 11, 56, 20, tzinfo=UTC))
    assert pruned == 60
    assert count(db) == 30
    assert count(db, "SELECT min(ts) FROM requests") == datetime(2025, 10, 10, 11, 56, tzinfo=UTC)
    for table in ("conflicts", "conflict_lines"):
        assert count(db, f"SELECT count(*) FROM {table}") == 30, table
    for table in ("request_minutes", "conflict_minutes"):
        assert count(db, f"SELECT count(DISTINCT minute) FROM {table}") == 1, table
    # The reject among the pruned lines went with them; the one after the kept lines stays.
    assert isinstance(reject_lines, list) and len(reject_lines) == 2
    assert count(db, "SELECT list(line) FROM rejects") == reject_lines[1:]
    assert_rollups_match(db)


HAPROXY = (
    "10.0.0.1:5000 [05/Oct/2025:12:00:00.123] fe be/s1 0/0/1/2/3 409 100 - - ---- 1/1/0/0/0 0/0 "
    '"PUT /orders/1 HTTP/1.1"'
)
ZONE_CASES = {
    # file name: (format, content, stored UTC time) with [ingest] timezone = Europe/Berlin (+02:00
    # in October): only times written without an offset move.
    "haproxy.log": ("haproxy", HAPROXY, "2025-10-05 10:00:00.123+00"),
    "haproxy-5424.log": (
        "haproxy",
        "<134>1 2025-10-05T12:00:00.123-04:00 lb1 haproxy 123 - - " + HAPROXY,
        "2025-10-05 16:00:00.123+00",
    ),
    "naive.json": (
        "json",
        '{"time":"2025-10-05T12:00:00","status":409,"method":"PUT","path":"/o/1"}',
        "2025-10-05 10:00:00+00",
    ),
    "utc.json": (
        "json",
        '{"time":"2025-10-05T12:00:00Z","status":409,"method":"PUT","path":"/o/1"}',
        "2025-10-05 12:00:00+00",
    ),
    "iis-utc.log": (
        "w3c",
        "#Fields: date time cs-method cs-uri-stem sc-status\n2025-10-05 12:00:00 PUT /o/1 409",
        "2025-10-05 12:00:00+00",
    ),
    "iis-local.log": (
        "w3c",
        "#Fields: date-local time-local cs-method cs-uri-stem sc-status\n"
        "2025-10-05 12:00:00 PUT /o/1 409",
        "2025-10-05 10:00:00+00",
    ),
    "combined.log": ("combined", lines(0, 1).strip(), "2025-10-10 11:55:00+00"),
}


def test_timestamps_without_offset_are_read_in_the_configured_zone(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    for name, (_fmt, text, _want) in ZONE_CASES.items():
        (tmp_path / name).write_text(text + "\n")
    settings = load_settings(db=db, env={"CONFLICTRADAR_INGEST_TIMEZONE": "Europe/Berlin"})
    assert settings.ingest.timezone == "Europe/Berlin"
    with Store.open(db) as store:
        report = Ingester(store, settings).ingest([tmp_path / n for n in ZONE_CASES])
        got = dict(
            store.con.execute(
                "SELECT regexp_extract(file, '[^/]+$'), strftime(ts AT TIME ZONE 'UTC',"
                " '%Y-%m-%d %H:%M:%S.%g') FROM requests"
            ).fetchall()
        )
    assert {f.path.rsplit("/", 1)[1]: f.format for f in report.files} == {
        n: c[0] for n, c in ZONE_CASES.items()
    }
    want = {n: c[2].removesuffix("+00") for n, c in ZONE_CASES.items()}
    assert {n: v.removesuffix(".000") for n, v in got.items()} == want


@pytest.mark.parametrize(
    ("local", "stored"),
    [
        ("2025-10-26T02:30:00", "2025-10-26 00:30:00"),  # DST ends: 02:30 happens twice, earlier
        ("2025-03-30T02:30:00", None),  # DST starts: 02:30 never happens, the line is rejected
        ("2025-01-15T12:00:00", "2025-01-15 11:00:00"),  # winter: +01:00
    ],
)
def test_local_times_across_daylight_saving(tmp_path: Path, local: str, stored: str | None) -> None:
    db, log = tmp_path / "db.duckdb", tmp_path / "a.json"
    log.write_text(f'{{"time":"{local}","status":200,"method":"GET","path":"/"}}\n')
    settings = load_settings(db=db, env={"CONFLICTRADAR_INGEST_TIMEZONE": "Europe/Berlin"})
    with Store.open(db) as store:
        report = Ingester(store, settings, forced="json").ingest([log])
    if stored is None:
        assert report.total("rejected") == 1
        assert count(db, "SELECT reason FROM rejects") == "no valid timestamp"
    else:
        assert (
            count(db, "SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') FROM requests")
            == stored
        )


def test_unknown_timezone_is_refused_with_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ingest.timezone = 'Mars/Olympus' is not a time zone"):
        load_settings(
            db=tmp_path / "db.duckdb", env={"CONFLICTRADAR_INGEST_TIMEZONE": "Mars/Olympus"}
        )
