"""The SQL page under AppTest: every escape attempt is refused with one clear error on the page,
a runaway query is cancelled at the time limit, and a good query gives a table, CSV and chart.
(tests/test_query.py covers the sandbox itself; this is what a user of the page sees.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_dashboard import open_app
from tests.test_dashboard_data import build_db, raw

ESCAPES = [
    ("INSERT INTO causes VALUES ('x', 'x', 'x', 'x')", "only SELECT queries are allowed"),
    ("CREATE TABLE owned AS SELECT 1", "only SELECT queries are allowed"),
    ("DROP TABLE requests", "only SELECT queries are allowed"),
    ("COPY requests TO '/tmp/stolen.csv'", "only SELECT queries are allowed"),
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM glob('/*')", "Permission Error"),
    ("ATTACH '/tmp/other.duckdb' AS other", "only SELECT queries are allowed"),
    ("INSTALL httpfs", "only SELECT queries are allowed"),
    ("LOAD httpfs", "only SELECT queries are allowed"),
    ("SET enable_external_access = true", "only SELECT queries are allowed"),
    ("PRAGMA database_list", "only SELECT queries are allowed"),
    ("SELECT 1; DROP TABLE requests", "only one statement is allowed per query, got 2"),
    ("SELECT * FROM read_text('/etc/hostname')", "Permission Error"),
    ("SELECT * FROM 'https://example.com/x.parquet'", "Permission Error"),
    ("SELECT current_setting('enable_external_access') AS v; SET threads = 1", "only one"),
    ("UPDATE conflicts SET cause = 'unknown'", "only SELECT queries are allowed"),
    ("DELETE FROM requests", "only SELECT queries are allowed"),
    ("CALL pragma_version()", "only SELECT queries are allowed"),
    ("EXPORT DATABASE '/tmp/dump'", "only SELECT queries are allowed"),
    ("SELECT * FROM no_such_table", "the query failed"),
    ("", "the query is empty"),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("sqlpage") / "sample.duckdb")


def sql_page(monkeypatch: pytest.MonkeyPatch, db: Path, config: Path | None = None) -> AppTest:
    return open_app(monkeypatch, db, "sql", config)


def run_sql(at: AppTest, sql: str) -> AppTest:
    at.text_area(key="sql_text").input(sql)
    return at.button(key="sql_run").click().run()


@pytest.mark.parametrize("sql,refusal", ESCAPES, ids=[e[0][:40] or "empty" for e in ESCAPES])
def test_escape_attempts_are_refused_with_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, db: Path, sql: str, refusal: str
) -> None:
    before = raw(db, "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM causes)")
    at = run_sql(sql_page(monkeypatch, db), sql)
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    assert refusal in at.error[0].value
    assert "Traceback" not in at.error[0].value and "\n" not in at.error[0].value.strip()
    assert not at.dataframe  # nothing ran
    assert raw(db, "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM causes)") == (
        before
    )
    assert not Path("/tmp/stolen.csv").exists() and not Path("/tmp/dump").exists()


def test_runaway_query_is_cancelled_at_the_time_limit(
    monkeypatch: pytest.MonkeyPatch, db: Path, tmp_path: Path
) -> None:
    config = tmp_path / "conflictradar.toml"
    config.write_text('[sql]\ntimeout = "1s"\n')
    at = sql_page(monkeypatch, db, config)
    at = run_sql(at, "SELECT count(*) FROM range(100000000) a, range(100000000) b")
    assert [e.value for e in at.error] == ["the query was cancelled after the 1 s time limit"]


def test_a_good_query_shows_table_csv_and_chart(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    at = sql_page(monkeypatch, db)
    at.selectbox(key="sql_example").select("409s by cause").run()
    assert str(at.text_area(key="sql_text").value).startswith("SELECT cause, count(*)")
    at.button(key="sql_run").click().run()
    assert not at.error
    table = at.dataframe[0].value
    expect = raw(db, "SELECT cause, count(*) FROM conflicts GROUP BY 1 ORDER BY 2 DESC")
    assert sorted(zip(table["cause"], table["conflicts"], strict=True)) == sorted(expect)
    assert any(b.label.startswith("Download CSV") for b in at.download_button)
    at.toggle(key="sql_chart").set_value(True).run()
    assert not at.exception and at.selectbox(key="sql_x").value == "cause"
    assert at.multiselect(key="sql_y").value == ["conflicts"]


def test_filters_example_is_the_sidebar_selection(
    monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    at = sql_page(monkeypatch, db)
    at.multiselect(key="cause").select("concurrent_update").run()
    at.selectbox(key="sql_example").select("Conflicts matching the sidebar filters").run()
    assert "cause IN ('concurrent_update')" in str(at.text_area(key="sql_text").value)
    at.button(key="sql_run").click().run()
    assert not at.error and set(at.dataframe[0].value["cause"]) == {"concurrent_update"}


def test_rows_are_capped(monkeypatch: pytest.MonkeyPatch, db: Path, tmp_path: Path) -> None:
    config = tmp_path / "conflictradar.toml"
    config.write_text("[sql]\nmax_rows = 50\n")
    at = run_sql(sql_page(monkeypatch, db, config), "SELECT * FROM requests")
    assert len(at.dataframe[0].value) == 50
    assert any("cut at the 50-row limit" in c.value for c in at.caption)
