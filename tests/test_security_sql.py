"""Security: user SQL never changes the database, whoever runs it and whichever path it takes.

Every attempt goes through `conflictradar sql` (its real main) and through the SQL page's code
path (dashboard.sandbox.run), with a real watcher running (served: the watcher's read-write
connection) and without one (a reader's own read-only connection). Each is refused with one
sentence and every watched table stays row-for-row the same; the watcher keeps ingesting. Then
each fence is shown to hold alone: the statement tree refuses every write without running it,
and the read-only transaction stops every write the tree would have let through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from conflictradar.cli import main as cli
from conflictradar.dashboard import sandbox as page
from conflictradar.ingest.errors import QueryRefusedError
from conflictradar.ingest.reader import DirectReader, open_reader
from conflictradar.ingest.sandbox import check_statement, read_only_transaction
from conflictradar.ingest.served_reader import connect_served
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.watcher import (
    WATCHED_TABLES,
    Watcher,
    direct_fingerprint,
    seed,
    start_watcher,
    stop_watcher,
    wait_for,
)

# (attempt, a word the refusal names). Data-modifying CTEs are typed as SELECT statements.
CTE_WRITES = [
    ("with x as (delete from conflicts returning 1) select count(*) from x", "DELETE"),
    ("WITH x AS (DELETE FROM conflicts RETURNING 1) SELECT count(*) FROM x -- c", "DELETE"),
    ("/* c */ with x as (delete from main.conflicts returning 1) select count(*) from x", "DELETE"),
    ("with x as materialized (delete from conflicts returning 1) select count(*) from x", "DELETE"),
    (
        "with x as (update causes set remediation = '[fix](https://evil.example)' returning 1)"
        " select count(*) from x",
        "UPDATE",
    ),
    (
        "with x as (insert into alert_outbox (key, channel, state) values ('k', 'ops', 'pending')"
        " returning 1) select count(*) from x",
        "INSERT",
    ),
    ("with x as (delete from rejects returning 1) select count(*) from x", "DELETE"),
    ("with x as (delete from alert_events returning 1) select count(*) from x", "DELETE"),
    ("with x as (update deliveries set error = 'x' returning 1) select count(*) from x", "UPDATE"),
    ("with x as (delete from alert_state returning 1) select count(*) from x", "DELETE"),
    (
        "with x as (insert into alert_notifications (id) values ('n') returning 1) select * from x",
        "INSERT",
    ),
    (
        "with x as (insert into conflicts select * from conflicts returning 1) select count(*)"
        " from x",
        "INSERT",
    ),
    ("with x as (delete from files returning 1) select count(*) from x", "DELETE"),
    ("with x as (delete from requests returning 1) select count(*) from x", "DELETE"),
    (
        "with a as (select 1 v), x as (delete from conflicts returning 1) select * from a, x",
        "DELETE",
    ),
    (
        "with x as (delete from conflicts returning 1) select 1 from x union all select 2",
        "DELETE",
    ),
    ("select * from (with x as (delete from conflicts returning 1) select * from x)", "DELETE"),
    ("select (with x as (delete from conflicts returning 1) select count(*) from x)", "DELETE"),
    (
        "with x as (update conflicts set cause = 'unknown' returning 1) select count(*) from x",
        "UPDATE",
    ),
    ("with x as (copy conflicts to '/tmp/conflictradar-stolen.csv') select 1", "COPY"),
    ("with recursive x as (delete from conflicts returning 1) select * from x", "DML"),
]
STATEMENTS = [
    ("delete from conflicts", "DELETE"),
    ("update causes set remediation = 'x'", "UPDATE"),
    ("insert into alert_outbox (key) values ('k')", "INSERT"),
    ("insert or replace into causes select * from causes", "INSERT"),
    ("drop table rejects", "DROP"),
    ("truncate deliveries", "DELETE"),
    ("create table owned as select 1", "CREATE"),
    ("alter table conflicts add column x int", "ALTER"),
    (
        "merge into conflicts using (select 1 a) s on false when not matched then insert default"
        " values",
        "MERGE",
    ),
    ("checkpoint", "CALL"),
    ("select * from checkpoint()", "checkpoint"),
    ("select * from force_checkpoint()", "checkpoint"),
    ("select * from query('select 1')", "query"),
    ("create sequence s", "CREATE"),
    ("attach ':memory:' as m", "ATTACH"),
    ("select 1; delete from conflicts", "one statement"),
    ("begin; delete from conflicts; commit", "one statement"),
    ("commit", "TRANSACTION"),
    ("vacuum", "VACUUM"),
    ("set memory_limit = '100GB'", "SET"),
    ("reset memory_limit", "SET"),
    ("pragma enable_profiling", "PRAGMA"),
    ("pivot conflicts on cause using count(*)", "statement"),
    ("select * from read_text('/etc/passwd')", "disabled"),
    ("select * from glob('/*')", "disabled"),
    ("copy conflicts to '/tmp/conflictradar-stolen.csv'", "COPY"),
]
ATTEMPTS = CTE_WRITES + STATEMENTS
IDS = [a[0][:60] for a in ATTEMPTS]


@pytest.fixture(scope="module")
def watcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watcher]:
    w = start_watcher(tmp_path_factory.mktemp("served"))
    yield w
    err = stop_watcher(w)
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def before(watcher: Watcher) -> dict[str, list[tuple[object, ...]]]:
    return watcher.snapshot()


@pytest.fixture(scope="module")
def before_print(watcher: Watcher, before: dict[str, list[tuple[object, ...]]]) -> list[str]:
    return watcher.fingerprint()


@pytest.fixture(scope="module")
def cold_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database no watcher serves: readers open it themselves, read-only."""
    tmp = tmp_path_factory.mktemp("cold")
    db = tmp / "cold.duckdb"
    seed(db, tmp / "logs")
    assert cli(["ingest", str(tmp / "logs"), "--db", str(db), "--quiet"]) == 0
    os.symlink("/etc", str(db) + ".tmp")  # the planted spill-directory symlink
    return db


@pytest.fixture(scope="module")
def cold_print(cold_db: Path) -> list[str]:
    return direct_fingerprint(cold_db)


def _refused_by_cli(db: Path, sql: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = cli(["sql", sql, "--db", str(db)])
    out, err = capsys.readouterr()
    assert code == 1, out
    assert out == ""
    assert err.startswith("conflictradar: error: ") and err.count("\n") == 1, err
    return err.removesuffix("\n")


def _assert_names(message: str, needle: str) -> None:
    assert "\n" not in message
    assert needle.lower() in message.lower(), message


@pytest.mark.parametrize(("sql", "needle"), ATTEMPTS, ids=IDS)
def test_served_cli_refuses_and_nothing_changes(
    watcher: Watcher, before_print: list[str], sql: str, needle: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _assert_names(_refused_by_cli(watcher.db, sql, capsys), needle)
    assert watcher.fingerprint() == before_print


@pytest.mark.parametrize(("sql", "needle"), ATTEMPTS, ids=IDS)
def test_served_sql_page_refuses_and_nothing_changes(
    watcher: Watcher, before_print: list[str], sql: str, needle: str
) -> None:
    outcome = page.run(open_reader(watcher.settings), sql)
    assert outcome.result is None and not outcome.busy
    _assert_names(outcome.refusal, needle)
    assert watcher.fingerprint() == before_print


def test_served_internal_query_op_cannot_write_either(
    watcher: Watcher, before: dict[str, list[tuple[object, ...]]]
) -> None:
    """Anyone holding the token can send the trusted `query` op: it has the same fences."""
    served = connect_served(watcher.db, watcher.settings.sql, wait_s=0)
    assert served is not None
    for sql, needle in CTE_WRITES[:6]:
        with pytest.raises(QueryRefusedError) as info:
            served.query(sql)
        _assert_names(str(info.value), needle)
    assert watcher.snapshot() == before


def test_the_watcher_kept_ingesting_and_the_seeded_tables_are_intact(
    watcher: Watcher, before: dict[str, list[tuple[object, ...]]]
) -> None:
    assert all(before[t] for t in WATCHED_TABLES), "every watched table has rows to protect"
    total = watcher.append(70)
    wait_for(lambda: watcher.requests() == total)
    wait_for(watcher.classified)
    after = watcher.snapshot()
    for table in ("causes", "rejects", "alert_state", "alert_events", "alert_notifications",
                  "alert_outbox", "deliveries"):  # fmt: skip
        assert after[table] == before[table], table
    assert len(after["conflicts"]) == len(before["conflicts"]) + 10  # the new 409s


def test_served_memory_hog_is_refused_and_the_watcher_stays_small(watcher: Watcher) -> None:
    outcome = page.run(
        open_reader(watcher.settings),
        "SELECT length(string_agg(repeat('x', 1000000), '')) FROM range(5000)",
    )
    assert "memory limit" in outcome.refusal, outcome.refusal
    peak_kb = watcher.status("VmHWM")
    print(f"watcher peak RSS after the string_agg probe: {peak_kb / 1024:.0f} MB")
    assert peak_kb < 2 * 1024 * 1024
    total = watcher.append(7)
    wait_for(lambda: watcher.requests() == total)


@pytest.mark.parametrize(("sql", "needle"), ATTEMPTS, ids=IDS)
def test_direct_cli_and_sql_page_refuse_without_a_watcher(
    cold_db: Path, cold_print: list[str], sql: str, needle: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _assert_names(_refused_by_cli(cold_db, sql, capsys), needle)
    settings = load_settings(db=cold_db, env={})
    outcome = page.run(DirectReader(cold_db, settings.sql), sql)
    _assert_names(outcome.refusal, needle)
    assert direct_fingerprint(cold_db) == cold_print
    assert not Path("/tmp/conflictradar-stolen.csv").exists()


def test_spill_directory_symlink_leads_nowhere(
    cold_db: Path, watcher: Watcher, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB lets a sandboxed connection read its temp directory, `<db>.tmp/` by default."""
    _assert_names(_refused_by_cli(cold_db, f"select * from read_text('{cold_db}.tmp/passwd')",
                                  capsys), "disabled")  # fmt: skip
    os.symlink("/etc", str(watcher.db) + ".tmp")
    try:
        _assert_names(_refused_by_cli(watcher.db, f"select * from read_text('{watcher.db}.tmp/"
                                      "passwd')", capsys), "disabled")  # fmt: skip
    finally:
        os.unlink(str(watcher.db) + ".tmp")


# -- each fence alone ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection like the watcher's, with every table holding a row."""
    tmp_path = tmp_path_factory.mktemp("writable")
    seed(tmp_path / "w.duckdb", tmp_path / "logs")
    with Store.open(tmp_path / "w.duckdb", sandboxed=True) as store:
        store.con.execute("INSERT INTO conflicts (path, cause) VALUES ('/x', 'unknown')")
        store.con.execute("INSERT INTO requests (path) VALUES ('/x')")
        store.con.execute("INSERT INTO rejects (reason) VALUES ('r')")
        yield store.con


@pytest.mark.parametrize(("sql", "needle"), ATTEMPTS, ids=IDS)
def test_the_statement_tree_alone_refuses(sql: str, needle: str) -> None:
    if needle == "disabled":
        pytest.skip("a file read is a reading SELECT: the connection refuses it")
    with pytest.raises(QueryRefusedError) as info:
        check_statement(sql)
    _assert_names(str(info.value), needle)


@pytest.mark.parametrize(("sql", "needle"), CTE_WRITES, ids=[a[0][:60] for a in CTE_WRITES])
def test_the_read_only_transaction_alone_stops_the_write(
    writable: duckdb.DuckDBPyConnection, sql: str, needle: str
) -> None:
    """Without the tree check, on a read-write connection: the write fails at execution."""
    tables = ("conflicts", "causes", "rejects", "alert_outbox", "deliveries", "files")
    before = {t: writable.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    cur = writable.cursor()
    with read_only_transaction(cur), pytest.raises(duckdb.Error):
        cur.execute(sql).fetchall()
    cur.close()
    after = {t: writable.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    assert after == before
