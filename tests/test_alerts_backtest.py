"""`alerts backtest` on the bundled sample logs: every injected spike (sample_logs/data/spikes.csv)
is found while it happens, nothing fires in the quiet hours, and nothing is sent or written."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conflictradar.alerts.backtest import run
from conflictradar.alerts.commands import run_backtest
from conflictradar.alerts.config import load_alert_config
from conflictradar.alerts.lifecycle import AlertState
from conflictradar.alerts.rules import Scope
from conflictradar.ingest.reader import DirectReader
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from tests.test_alerts_kit import Receiver, receiver, settings_with

__all__ = ["receiver"]

DATA = Path(__file__).resolve().parents[1] / "sample_logs" / "data"
WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Spike:
    start: datetime
    end: datetime
    scope: str


def spikes() -> list[Spike]:
    with (DATA / "spikes.csv").open() as fh:
        return [
            Spike(
                datetime.fromisoformat(r["start"].replace("Z", "+00:00")),
                datetime.fromisoformat(r["end"].replace("Z", "+00:00")),
                r["scope"],
            )
            for r in csv.DictReader(fh)
        ]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from conflictradar.ingest.paths import expand_paths
    from conflictradar.ingest.pipeline import Ingester

    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    settings = Settings(db=path)
    with Store.open(path) as store:
        Ingester(store, settings).ingest(expand_paths([str(DATA)]))
    yield settings


def span(settings: Settings) -> tuple[datetime, datetime]:
    reader = DirectReader(settings.db, settings.sql)
    lo, hi = reader.query("SELECT min(ts), max(ts) FROM requests").to_pylist()[0].values()
    return lo.replace(second=0, microsecond=0), hi.replace(second=0, microsecond=0) + WINDOW


def test_the_default_rules_find_every_injected_spike_and_nothing_else(sample_db: Settings) -> None:
    since, until = span(sample_db)
    result = run(
        load_alert_config(sample_db, {}),
        DirectReader(sample_db.db, sample_db.sql),
        since,
        until,
        timedelta(minutes=1),
    )
    fired = result.fired()
    injected = spikes()
    assert len(injected) >= 4
    for spike in injected:
        hits = [
            e
            for e in fired
            if spike.start <= e.ts <= spike.end
            and (
                (spike.scope == "global" and e.scope is Scope.GLOBAL)
                or (e.scope is Scope.ENDPOINT and e.scope_value == spike.scope)
            )
        ]
        assert hits, f"no alert fired for the spike {spike}; fired: {[e.message for e in fired]}"
    for e in fired:
        inside = any(s.start <= e.ts <= s.end + WINDOW for s in injected)
        assert inside, f"alert fired in a quiet period: {e.ts} {e.message}"
    # Every firing alert resolved once the spike was over.
    resolved = [e for e in result.events if e.state is AlertState.RESOLVED]
    assert len(resolved) == len(fired)


def test_backtest_command_prints_why_writes_a_plot_and_sends_nothing(
    sample_db: Settings, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKTEST_HOOK", receiver.url)
    settings = settings_with(
        sample_db, {"channels": {"ops": {"type": "slack", "url_env": "BACKTEST_HOOK"}}}
    )
    before = hashlib.sha256(settings.db.read_bytes()).hexdigest()
    since, until = span(settings)
    out = io.StringIO()
    html = tmp_path / "backtest.html"
    reader = DirectReader(settings.db, settings.sql)
    assert run_backtest(settings, reader, since, until, timedelta(minutes=1), html, out) == 0
    text = out.getvalue()
    assert text.startswith("backtest ") and "(nothing sent, nothing written)" in text
    firing = [line for line in text.splitlines() if "  FIRING " in line]
    assert len(firing) >= len(spikes())
    assert "409 spike per endpoint: endpoint /orders/{id} firing:" in text
    assert "vs a baseline rate of" in text and "top causes:" in text
    assert "alerts would have fired" in text.splitlines()[-2]
    page = html.read_text()
    assert "plotly" in page and "409 spike per endpoint" in page and "firing" in page
    assert receiver.requests == []
    assert hashlib.sha256(settings.db.read_bytes()).hexdigest() == before
    tables = reader.query("SELECT table_name FROM information_schema.tables").column(0)
    assert "alert_events" not in tables.to_pylist()


def test_backtest_json_is_one_object_per_alert_with_the_spec_fields(sample_db: Settings) -> None:
    since, until = span(sample_db)
    out = io.StringIO()
    reader = DirectReader(sample_db.db, sample_db.sql)
    assert run_backtest(sample_db, reader, since, until, None, None, out, output="json") == 0
    alerts = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(alerts) >= len(spikes())
    for a in alerts:
        assert list(a)[:7] == [
            "rule",
            "scope",
            "key",
            "fired_at",
            "resolved_at",
            "value",
            "baseline",
        ]
        assert a["scope"] in ("global", "endpoint") and (a["key"] is None) == (
            a["scope"] == "global"
        )
        assert a["fired_at"].endswith("Z") and a["resolved_at"] > a["fired_at"]
        # value and baseline are 409 rates: the window's, and the one it was judged against
        assert 0 < a["value"] <= 1 and 0 <= a["baseline"] < a["value"]
        assert a["count"] >= 10 and a["requests"] >= a["count"]
    keys = {a["key"] for a in alerts}
    assert {s.scope for s in spikes() if s.scope != "global"} <= keys
