"""Alert counts count requests, not lines (SPEC 3): a gateway line and the service line of the
same request are one request and at most one 409, in the minute under way (rows), in whole
minutes (rollups) and in a backtest's copy, just as `conflicts` counts them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conflictradar.alerts.counts import sample_rule
from conflictradar.alerts.rules import Scope
from conflictradar.ingest.alert_counts import (
    TOTAL,
    Span,
    copy_for_backtest,
    first_minute,
    window_counts,
)
from conflictradar.ingest.alert_settings import parse_alert_settings
from conflictradar.ingest.reader import DirectReader
from conflictradar.ingest.settings import Settings
from tests.test_classify import T0
from tests.test_tiers import FLEET, store_all

# FLEET: 13 lines; 7 requests (six with a gateway and a service line, one gateway line alone),
# of which 5 answered their client 409.
REQUESTS, CONFLICTS = 7, 5
MID = T0 + timedelta(seconds=30)  # the minute under way: counted from the rows
WHOLE = T0 + timedelta(minutes=1)  # a whole minute: summed from the rollups


def counts(con: object, scope: Scope, *, rows: bool) -> dict[str, tuple[float, float]]:
    if rows:
        rolled, from_rows = [], [Span(0, T0 - timedelta(microseconds=1), MID)]
    else:
        rolled, from_rows = [Span(0, T0, WHOLE)], []
    got = window_counts(con, scope, rolled, from_rows)  # type: ignore[arg-type]
    return {c.key: (c.requests, c.conflicts) for c in got}


@pytest.mark.parametrize("rows", [True, False], ids=["rows", "rollups"])
def test_a_gateway_and_service_pair_is_one_request(tmp_path: Path, rows: bool) -> None:
    con = store_all(tmp_path, FLEET)
    lines = con.execute("SELECT count(*) FROM requests").fetchone()
    assert lines == (13,)  # the pairs really are two lines each
    (stored,) = con.execute("SELECT count(*) FROM conflicts").fetchone() or (0,)
    assert stored == CONFLICTS
    assert counts(con, Scope.GLOBAL, rows=rows) == {TOTAL: (REQUESTS, CONFLICTS)}
    per_endpoint = con.execute(
        "SELECT endpoint, count(*) FROM conflicts GROUP BY endpoint"
    ).fetchall()
    by_endpoint = counts(con, Scope.ENDPOINT, rows=rows)
    assert {k: c for k, (_, c) in by_endpoint.items() if c} == {e: n for e, n in per_endpoint}
    assert sum(r for r, _ in by_endpoint.values()) == REQUESTS
    causes = counts(con, Scope.CAUSE, rows=rows)
    assert causes[TOTAL] == (REQUESTS, CONFLICTS)
    assert sum(c for k, (_, c) in causes.items() if k != TOTAL) == CONFLICTS


def test_the_minute_under_way_and_the_rollups_agree_in_a_rule(tmp_path: Path) -> None:
    """The same rule sampled inside the minute and at its end sees the same requests, live and
    in a backtest's copy of the database."""
    con = store_all(tmp_path, FLEET)
    settings = parse_alert_settings(
        {"rules": [{"name": "all", "scope": "global", "window": "5m", "min_count": 1}]}
    )
    (rule,) = settings.rules
    end_of_minute = T0 + timedelta(minutes=1)
    first = first_minute(con)
    live = sample_rule(con, rule, [MID, end_of_minute], first)
    assert [s.get(TOTAL).now.requests for s in live] == [REQUESTS, REQUESTS]
    assert [s.get(TOTAL).now.conflicts for s in live] == [CONFLICTS, CONFLICTS]
    (db_file,) = con.execute(
        "SELECT path FROM duckdb_databases() WHERE NOT internal AND path IS NOT NULL"
    ).fetchone() or (None,)
    con.close()
    reader = DirectReader(Path(db_file), Settings().sql)
    mem = copy_for_backtest(reader, T0 - timedelta(minutes=10), end_of_minute, rows=True)
    copied = sample_rule(mem, rule, [MID, end_of_minute], first_minute(mem))
    assert [(s.get(TOTAL).now.requests, s.get(TOTAL).now.conflicts) for s in copied] == [
        (REQUESTS, CONFLICTS),
        (REQUESTS, CONFLICTS),
    ]
