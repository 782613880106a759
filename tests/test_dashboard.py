"""Dashboard pages under streamlit's AppTest, on real DuckDB files: every page renders, the numbers
shown equal plain SQL over the same rows, filters (from the sidebar or the URL) change them, a
rerun shows newly ingested rows, and missing, empty and locked databases get a calm message."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from tests.test_dashboard_data import FILES, NEWEST, _row, build_db, commit, raw

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = ("overview", "hotspots", "causes", "explorer", "sql", "alerts")
App = Callable[..., AppTest]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("dash") / "sample.duckdb")


def open_app(
    monkeypatch: pytest.MonkeyPatch, db: Path, page: str = "overview",
    config: Path | None = None, **query: str | list[str],
) -> AppTest:  # fmt: skip
    """A finished AppTest run of `page` over `db`, with the given URL query parameters."""
    monkeypatch.setenv("CONFLICTRADAR_DB", str(db))
    if config is None:
        monkeypatch.delenv("CONFLICTRADAR_CONFIG", raising=False)
    else:
        monkeypatch.setenv("CONFLICTRADAR_CONFIG", str(config))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> App:
    """app(db, page=..., **query_params) -> a finished AppTest run of that page."""
    return partial(open_app, monkeypatch)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def shown_text(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("info", "warning", "error", "caption", "markdown")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def window(hours: float | None) -> list[object]:
    """[start, end) of "last N hours" on the sample: ends after the newest line's minute."""
    end = NEWEST.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(hours=hours) if hours else NEWEST - timedelta(hours=48)
    return [start, end]


def expected_kpis(db: Path, hours: float | None, where: str = "true") -> dict[str, str]:
    req, con, clients = raw(
        db,
        "SELECT count(*), count(*) FILTER (WHERE status = 409),"
        " count(DISTINCT (client_ip, user_agent)) FILTER (WHERE status = 409)"
        f" FROM requests WHERE ts >= ? AND ts < ? AND {where}",
        window(hours),
    )[0]
    endpoints = raw(
        db,
        f"SELECT count(DISTINCT endpoint) FROM conflicts WHERE ts >= ? AND ts < ? AND {where}",
        window(hours),
    )[0][0]
    return {
        "Requests": f"{req:,}",
        "409s": f"{con:,}",
        "409 rate": f"{con / req * 100:.2f} %",
        "Endpoints hit": f"{endpoints:,}",
        "Clients affected": f"{clients:,}",
    }


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_errors(app: App, sample_db: Path, page: str) -> None:
    at = app(sample_db, page)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.lower() == page.replace("sql", "SQL").lower()
    assert "ending at the newest line (historical data)" in shown_text(at)


def test_overview_kpis_equal_sql(app: App, sample_db: Path) -> None:
    at = app(sample_db)
    shown = metrics(at)
    assert {k: shown[k] for k in expected_kpis(sample_db, 24)} == expected_kpis(sample_db, 24)
    top_cause = raw(
        sample_db,
        "SELECT cause FROM conflicts WHERE ts >= ? AND ts < ?"
        " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        window(24),
    )
    assert any(f"**`{top_cause[0][0]}`**" in m.value for m in at.markdown)


def test_overview_change_vs_previous_period(app: App, sample_db: Path) -> None:
    at = app(sample_db, range="6h")
    prev_end, prev_start = window(6)[0], window(12)[0]
    now = raw(sample_db, "SELECT count(*) FROM conflicts WHERE ts >= ? AND ts < ?", window(6))
    before = raw(
        sample_db, "SELECT count(*) FROM conflicts WHERE ts >= ? AND ts < ?", [prev_start, prev_end]
    )
    delta = next(m.delta for m in at.metric if m.label == "409s")
    assert delta == f"{(now[0][0] - before[0][0]) / before[0][0] * 100:+.0f} %"


def markdown_rows(source: str) -> list[list[str]]:
    """The body cells of the GFM table in `source`, unescaped (dashboard.panels.markdown_table)."""
    lines = [x for x in source.splitlines() if x.startswith("|")]
    return [[re.sub(r"\\(.)", r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", x)[1:-1]]
            for x in lines[2:]]  # fmt: skip


def test_top_endpoint_equals_sql(app: App, sample_db: Path) -> None:
    at = app(sample_db, range="all")
    (table,) = [m.value for m in at.markdown if m.value.startswith("| endpoint |")]
    expect = raw(  # the main cause: the most 409s, the greater name on a tie
        sample_db,
        "SELECT endpoint, sum(n), arg_max(cause, (n, cause)) FROM (SELECT endpoint, cause,"
        " count(*) AS n FROM conflicts GROUP BY ALL) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
    )
    shown = [(r[0], int(r[1].replace(",", "")), r[4]) for r in markdown_rows(table)]
    assert shown == expect


def test_cause_shares_equal_sql(app: App, sample_db: Path) -> None:
    at = app(sample_db, "causes", range="all")
    table = at.dataframe[0].value
    expect = raw(
        sample_db,
        "SELECT cause, count(*), count(*) / sum(count(*)) OVER ()"
        " FROM conflicts GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    assert list(table["cause"]) == [c for c, _, _ in expect]
    assert list(table["conflicts"]) == [n for _, n, _ in expect]
    assert list(table["share"]) == pytest.approx([s for _, _, s in expect])
    remedies = shown_text(at)
    assert (
        "Idempotency-Key" in str([e.value for e in at.success]) and "Example evidence" in remedies
    )


@pytest.mark.parametrize("hours,range_", [(None, "all"), (1, "1h"), (6, "6h"), (24, "24h")])
def test_time_range_from_url_changes_the_numbers(
    app: App, sample_db: Path, hours: float | None, range_: str
) -> None:
    at = app(sample_db, range=range_)
    expect = expected_kpis(sample_db, hours)
    assert {k: metrics(at)[k] for k in expect} == expect


def test_sidebar_filters_change_numbers_and_url(app: App, sample_db: Path) -> None:
    at = app(sample_db, range="all")
    before = metrics(at)["409s"]
    at.multiselect(key="cause").select("retry_after_success").run()
    at.multiselect(key="method").select("POST").run()
    # (Writing a changed widget into the URL is the browser's job: see test_dashboard_browser.)
    expect = expected_kpis(sample_db, None, "method = 'POST'")
    n = raw(sample_db, "SELECT count(*) FROM conflicts WHERE cause = 'retry_after_success'")[0][0]
    shown = metrics(at)
    assert shown["409s"] == f"{n:,}" != before
    assert shown["Requests"] == expect["Requests"]  # the cause narrows 409s, not requests
    # The same view opened from the link: the URL alone carries the filters.
    again = app(sample_db, "explorer", range="all", cause="retry_after_success", method="POST")
    assert again.multiselect(key="cause").value == ["retry_after_success"]
    assert f"{n:,} conflicts" in shown_text(again)


def test_file_and_endpoint_filters(app: App, sample_db: Path) -> None:
    at = app(sample_db, range="all", file=FILES[0], endpoint=["/orders/{id}", "/payments"])
    expect = expected_kpis(
        sample_db, None, f"file = '{FILES[0]}' AND endpoint IN ('/orders/{{id}}', '/payments')"
    )
    assert {k: metrics(at)[k] for k in expect} == expect


def test_custom_range(app: App, sample_db: Path) -> None:
    at = app(sample_db, range="custom", **{"from": "2025-06-02T18:00", "to": "2025-06-03T06:00"})
    n = raw(
        sample_db,
        "SELECT count(*) FROM conflicts WHERE ts >= '2025-06-02 18:00+00'"
        " AND ts < '2025-06-03 06:00+00'",
    )[0][0]
    assert metrics(at)["409s"] == f"{n:,}"


def test_rerun_shows_newly_ingested_rows(app: App, tmp_path: Path) -> None:
    db = build_db(tmp_path / "live.duckdb")
    at = app(db, range="all")
    before = int(metrics(at)["409s"].replace(",", ""))
    late = NEWEST + timedelta(seconds=30)
    rows = [
        _row(late, FILES[0], "10.9.9.9", "POST", f"/orders/{i}/cancel", "/orders/{id}/cancel", 409)
        for i in range(5)
    ]
    with Store.open(db) as store:
        commit(store, rows, Settings(db=db))
    at.run()  # what the live fragment's timer does
    assert metrics(at)["409s"] == f"{before + 5:,}"


def test_hotspots_drill_down_lists_the_conflicts_behind_a_pick(app: App, sample_db: Path) -> None:
    at = app(sample_db, "hotspots", range="all")
    assert "Click a heatmap cell" in shown_text(at)
    at.selectbox(key="drill_endpoint").select("/orders/{id}").run()
    at.selectbox(key="drill_cause").select("concurrent_update").run()
    n = raw(
        sample_db,
        "SELECT count(*) FROM conflicts WHERE endpoint = '/orders/{id}'"
        " AND cause = 'concurrent_update'",
    )[0][0]
    text = shown_text(at)
    assert f"{n:,} conflicts" in text
    assert "**Evidence:** lost a race" in text and "**Remediation:**" in text
    assert any('HTTP/1.1" 409' in t.value for t in at.text)  # the raw line
    at.selectbox(key="drill_path").select("/orders/7").run()
    n = raw(sample_db, "SELECT count(*) FROM conflicts WHERE path = '/orders/7'")[0][0]
    assert f"{n:,} conflicts" in shown_text(at)
    at.button(key="drill_clear").click().run()
    assert "Click a heatmap cell" in shown_text(at)


def test_heatmap_cell_selection_drills_into_endpoint_and_time(app: App, sample_db: Path) -> None:
    at = app(sample_db, "hotspots", range="1h")
    # What a click on a cell sends (the selection Streamlit stores for the chart's key).
    at.session_state["drill_endpoint"] = "/orders/{id}"
    at.session_state["drill_cell"] = "2025-06-03 11:45"
    at.run()
    n = raw(
        sample_db,
        "SELECT count(*) FROM conflicts WHERE endpoint = '/orders/{id}'"
        " AND ts >= '2025-06-03 11:45+00' AND ts < '2025-06-03 11:46+00'",
    )[0][0]
    text = shown_text(at)
    assert "Time cell from the heatmap: 2025-06-03 11:45 – 11:46 UTC" in text  # 1-min cells
    assert f"{n:,} conflicts" in text


def test_explorer_search_and_csv(app: App, sample_db: Path) -> None:
    at = app(sample_db, "explorer", range="all")
    total = raw(sample_db, "SELECT count(*) FROM conflicts")[0][0]
    assert f"{total:,} conflicts" in shown_text(at)
    at.text_input(key="search").input("already exists").run()
    n = raw(sample_db, "SELECT count(*) FROM conflicts WHERE message ILIKE '%already exists%'")
    assert f"{n[0][0]:,} conflicts" in shown_text(at)
    assert any(b.label.startswith("Download CSV") for b in at.download_button)


def test_missing_database_is_a_friendly_state(app: App, tmp_path: Path) -> None:
    for page in PAGES:
        at = app(tmp_path / "nothing-yet.duckdb", page)
        assert not at.error
        assert "No database yet" in shown_text(at)


def test_empty_database_is_a_friendly_state(app: App, tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    Store.open(db).close()
    at = app(db)
    assert not at.error and "is empty" in shown_text(at)


def test_not_a_database_is_a_friendly_state(app: App, tmp_path: Path) -> None:
    db = tmp_path / "notes.duckdb"
    db.write_text("these are notes, not a database\n" * 200)
    at = app(db)
    assert not at.error and "not a conflictradar (DuckDB) database" in shown_text(at)


@pytest.fixture
def locked_db(sample_db: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the sample held read-write by another process, as `watch` would."""
    db = tmp_path / "locked.duckdb"
    db.write_bytes(sample_db.read_bytes())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " print('held', flush=True); time.sleep(120)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield db
    finally:
        holder.kill()
        holder.wait()


def test_locked_database_says_retrying(app: App, locked_db: Path) -> None:
    started = time.monotonic()
    at = app(locked_db)
    assert not at.error
    assert "locked" in shown_text(at) and "retrying" in shown_text(at)
    assert time.monotonic() - started < 30


def test_alerts_page_reads_alert_tables_without_secrets(app: App, tmp_path: Path) -> None:
    db = build_db(tmp_path / "alerts.duckdb")
    with Store.open(db) as store:
        store.con.execute(
            "CREATE TABLE alert_events (ts TIMESTAMPTZ, rule VARCHAR, scope VARCHAR,"
            " scope_value VARCHAR, state VARCHAR, value DOUBLE, webhook_url VARCHAR)"
        )
        store.con.execute(
            "INSERT INTO alert_events VALUES ('2025-06-03 11:50+00', '409 spike', 'endpoint',"
            " '/orders/{id}', 'pending', 12, 'https://x'), ('2025-06-03 11:51+00', '409 spike',"
            " 'endpoint', '/orders/{id}', 'firing', 25, 'https://x'), ('2025-06-03 11:40+00',"
            " 'global', 'global', NULL, 'resolved', 3, 'https://x')"
        )
        store.con.execute(
            "CREATE TABLE deliveries (ts TIMESTAMPTZ, channel VARCHAR,"
            " status VARCHAR, secret_env VARCHAR)"
        )
        store.con.execute(
            "INSERT INTO deliveries VALUES ('2025-06-03 11:51+00', 'ops-slack', 'sent', 'HMAC_KEY')"
        )
    config = tmp_path / "conflictradar.toml"
    config.write_text(
        '[alerts.channels.ops-slack]\ntype = "slack"\nurl_env = "SLACK_WEBHOOK_URL"\n\n'
        '[[alerts.rules]]\nname = "409 spike"\nscope = "endpoint"\ndetector = "baseline"\n'
        'window = "5m"\nmin_count = 20\nfor = "1m"\nchannels = ["ops-slack"]\n'
    )
    at = app(db, "alerts", config=config)
    tables = [d.value for d in at.dataframe]
    rules, channels, state, history, deliveries = tables
    assert list(rules["name"]) == ["409 spike"] and list(channels["url from env"]) == [
        "SLACK_WEBHOOK_URL"
    ]
    assert sorted(state["state"]) == ["firing", "resolved"]
    assert len(history) == 3 and "webhook_url" not in history.columns
    assert list(deliveries.columns) == ["ts", "channel", "status"]
    assert "https://x" not in str(tables)


def test_alerts_page_on_the_alerts_packages_own_tables(app: App, tmp_path: Path) -> None:
    """The contract with the alerts package is its tables, so build them with its own DDL."""
    schema = pytest.importorskip("conflictradar.alerts.schema")
    db = build_db(tmp_path / "alerts2.duckdb")
    with Store.open(db) as store:
        schema.ensure_tables(store.con)
        store.con.execute(
            "INSERT INTO alert_state (rule, scope, scope_value, state, since, updated) VALUES"
            " ('409 spike per endpoint', 'endpoint', '/orders/{id}', 'firing',"
            " '2025-06-03 11:52+00', '2025-06-03 11:52+00')"
        )
        store.con.execute(
            "INSERT INTO alert_events (id, ts, rule, scope, scope_value, state, previous, value,"
            " message) VALUES ('e1', '2026-01-01 10:00+00', '409 spike per endpoint', 'endpoint',"
            " '/orders/{id}', 'firing', 'pending', 25, '25 409s in 5m')"
        )
        store.con.execute(
            "INSERT INTO deliveries (id, channel, channel_type, attempt, ts, outcome, status_code,"
            " delivered) VALUES ('d1', 'ops-slack', 'slack', 1, '2026-01-01 10:00+00', 'sent',"
            " 200, true)"
        )
    at = app(db, "alerts")
    tables = [d.value for d in at.dataframe]
    rules, state, history, deliveries = tables[0], *tables[-3:]
    # No rules configured: the page shows the defaults in effect.
    assert list(rules["name"]) == ["409 spike", "409 spike per endpoint"]
    assert list(rules["judges"]) == ["409 rate vs its own history"] * 2
    assert "these defaults apply" in shown_text(at)
    # The backtest runs the real `alerts backtest --format json` on request.
    at.toggle(key="alerts_backtest").set_value(True).run(timeout=120)
    assert "These rules would not have fired in the last 24 h" in shown_text(at)
    assert list(state["state"]) == ["firing"] and list(history["message"]) == ["25 409s in 5m"]
    assert list(deliveries["outcome"]) == ["sent"]
    # Events stamped by the wall clock fall outside the data's (historical) range: said so.
    assert "No alert state changes in the selected time range" in shown_text(at)


def test_log_text_is_shown_as_text_not_markup(app: App, tmp_path: Path) -> None:
    evil = "![pixel](https://evil.example/p.png) [click](https://evil.example) :red[x] $x$"
    rows = [_row(NEWEST, FILES[0], "10.6.6.6", "POST", "/orders/1/cancel", "/orders/{id}/cancel",
                 409, message=evil)]  # fmt: skip
    at = app(build_db(tmp_path / "evil.duckdb", rows), "explorer", range="all")
    shown = "\n".join(m.value for m in at.markdown)
    assert "Error message:" in shown
    assert "![pixel](" not in shown and "](https://evil" not in shown and ":red[" not in shown
    assert r"\!\[pixel\]\(https\:\/\/evil" in shown


def test_causes_and_explorer_show_confidence(app: App, sample_db: Path) -> None:
    """How much of each cause's (and endpoint's) picture is proven, and each conflict's."""
    at = app(sample_db, "causes", range="all")
    assert "How sure" in [s.value for s in at.subheader]
    by_endpoint = at.dataframe[1].value
    expect = raw(
        sample_db,
        "SELECT endpoint, count(*), count(*) FILTER (WHERE confidence = 'certain'),"
        " count(*) FILTER (WHERE confidence = 'inferred') FROM conflicts GROUP BY 1"
        " ORDER BY 2 DESC, 1 LIMIT 15",
    )
    assert [tuple(e) for e in expect] == [
        (r["endpoint"], r["conflicts"], r["certain"], r["inferred"])
        for r in by_endpoint.to_dict("records")
    ]
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert any('"name":"certain"' in c and '"name":"inferred"' in c for c in charts)
    at = app(sample_db, "explorer", range="all")
    listed = at.dataframe[0].value
    assert set(listed["confidence"]) <= {"certain", "inferred", "unknown"}
    assert "confidence" in listed.columns
