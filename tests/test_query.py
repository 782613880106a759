"""The read-only SQL surface: one SELECT, no files, no network, no settings, time and row caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from conflictradar.ingest.errors import DatabaseError, QueryRefusedError
from conflictradar.ingest.sandbox import open_readonly, run_query
from conflictradar.ingest.settings import SqlSettings
from conflictradar.ingest.store import Store


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "q.duckdb"
    with Store.open(path) as store:
        store.con.execute(
            "INSERT INTO requests (ts, file, line, status, method, path) "
            "SELECT TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i), '/l/a.log', i, "
            "CASE WHEN i % 10 = 0 THEN 409 ELSE 200 END, 'GET', '/x/' || i FROM range(1, 101) t(i)"
        )
    return path


ESCAPES = [
    ("INSERT INTO requests (line) VALUES (1)", "INSERT"),
    ("CREATE TABLE x AS SELECT 1", "CREATE"),
    ("DROP TABLE requests", "DROP"),
    ("DELETE FROM requests", "DELETE"),
    ("UPDATE requests SET line = 0", "UPDATE"),
    ("COPY requests TO '/tmp/conflictradar-stolen.csv'", "COPY"),
    ("SELECT * FROM read_csv('/etc/passwd')", "/etc/passwd"),
    ("SELECT * FROM glob('/*')", "/*"),
    ("SELECT * FROM read_text('/etc/hostname')", "/etc/hostname"),
    ("ATTACH '/tmp/other.duckdb' AS o", "ATTACH"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("SELECT 1; DROP TABLE requests", "one statement"),
    ("SELECT 1; SELECT 2", "one statement"),
    ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
    ("CALL pragma_version()", "CALL"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "example.com"),
]


@pytest.mark.parametrize(("sql", "needle"), ESCAPES, ids=[e[0][:40] for e in ESCAPES])
def test_escape_attempts_are_refused(db: Path, sql: str, needle: str) -> None:
    con = open_readonly(db, SqlSettings())
    with pytest.raises(QueryRefusedError) as info:
        run_query(con, sql, SqlSettings())
    message = str(info.value)
    assert "\n" not in message
    assert needle.lower() in message.lower() or "only select" in message.lower()
    # Nothing was written.
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (100,)
    assert not Path("/tmp/conflictradar-stolen.csv").exists()


def test_select_works_and_rows_are_capped(db: Path) -> None:
    con = open_readonly(db, SqlSettings())
    res = run_query(con, "SELECT line FROM requests ORDER BY line", SqlSettings(max_rows=7))
    assert res.truncated
    assert res.table.column("line").to_pylist() == [1, 2, 3, 4, 5, 6, 7]
    res = run_query(con, "SELECT count(*) AS n FROM requests WHERE status = 409", SqlSettings())
    assert not res.truncated and res.table.to_pylist() == [{"n": 10}]


def test_runaway_query_is_cancelled(db: Path) -> None:
    settings = SqlSettings(timeout_s=0.5)
    con = open_readonly(db, settings)
    with pytest.raises(QueryRefusedError, match=r"cancelled after the 0\.5 s time limit"):
        run_query(con, "SELECT count(*) FROM range(1000000000000) a, range(1000) b", settings)


def test_missing_database_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist yet"):
        open_readonly(tmp_path / "nope.duckdb", SqlSettings())


def test_bad_sql_is_one_sentence(db: Path) -> None:
    con = open_readonly(db, SqlSettings())
    with pytest.raises(QueryRefusedError, match="does not parse"):
        run_query(con, "SELEC nothing", SqlSettings())
    with pytest.raises(QueryRefusedError, match="failed"):
        run_query(con, "SELECT no_such_column FROM requests", SqlSettings())
