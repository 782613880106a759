"""Alert counts count requests, not lines (SPEC 3): a gateway line and the service line of the
same request are one request and at most one 409, in the minute under way (rows), in whole
minutes (rollups) and in a backtest's copy, just as `conflicts` counts them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
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
from conflictradar.ingest.store import Store
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


# --- the counts against a row-by-row reference, on the bundled sample logs ---

SAMPLES = Path(__file__).resolve().parents[1] / "sample_logs" / "data"
_KEYS = {Scope.GLOBAL: "''", Scope.ENDPOINT: "coalesce(endpoint, '(none)')"}


def reference_counts(
    con: duckdb.DuckDBPyConnection, scope: Scope, rolled: list[Span], rows: list[Span]
) -> dict[tuple[int, str], tuple[float, float]]:
    """Each span's requests and 409s per key, one span at a time, every row joined as it is:
    the counting as first written, before the rollups were reduced per minute and key."""
    heads = (
        "SELECT r.ts, r.endpoint, r.status FROM requests r ANTI JOIN request_links l"
        " ON l.file = r.file AND l.line = r.line AND l.ts = r.ts"
    )
    out: dict[tuple[int, str], tuple[float, float]] = {}
    for spans, is_rows in ((rolled, False), (rows, True)):
        if is_rows:
            requests, inside = f"({heads})", "ts > $lo AND ts <= $hi"
            n, conflicts, by_cause = "1", "1", "conflicts"
        else:
            requests, inside = "request_minutes", "minute >= $lo AND minute < $hi"
            n, conflicts, by_cause = "requests", "conflicts", "conflict_minutes"
        for s in spans:
            at = {"lo": s.start, "hi": s.end}
            key = _KEYS.get(scope, "''")
            got = con.execute(
                f"SELECT {key}, sum({n}), sum({n}) FILTER (status = 409) FROM {requests} s"
                f" WHERE {inside} GROUP BY ALL",
                at,
            ).fetchall()
            # Only keys with requests (a constant key over no rows still gives one row here).
            per_key = [(k, r, c or 0) for k, r, c in got if r]
            if scope is Scope.CAUSE and per_key:  # each cause over all requests of the span
                total = (sum(r for _, r, _ in per_key), sum(c for _, _, c in per_key))
                causes = con.execute(
                    f"SELECT coalesce(cause, 'unknown'), sum({conflicts}) FROM {by_cause}"
                    f" WHERE {inside} GROUP BY ALL",
                    at,
                ).fetchall()
                per_key = [(TOTAL, *total)] + [(k, total[0], c) for k, c in causes]
            for k, r, c in per_key:
                was = out.get((s.id, k), (0.0, 0.0))
                out[(s.id, k)] = (was[0] + r * s.weight, was[1] + c * s.weight)
    return out


@pytest.fixture(scope="module")
def sample_con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    from conflictradar.ingest.paths import expand_paths
    from conflictradar.ingest.pipeline import Ingester

    path = tmp_path_factory.mktemp("counts") / "sample.duckdb"
    with Store.open(path) as store:
        Ingester(store, Settings(db=path)).ingest(expand_paths([str(SAMPLES)]))
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.mark.parametrize("scope", list(Scope), ids=lambda s: s.value)
def test_counts_equal_a_row_by_row_reference(
    sample_con: duckdb.DuckDBPyConnection, scope: Scope
) -> None:
    """Many overlapping spans of whole minutes (some weighted, some outside the data) and spans
    of rows, in one query, against each span counted on its own from every row."""
    first, last = sample_con.execute("SELECT min(ts), max(ts) FROM requests").fetchone() or (0, 0)
    assert isinstance(first, datetime) and isinstance(last, datetime)
    rng = random.Random(f"counts-{scope.value}")
    lo_minute = first.replace(second=0, microsecond=0) - timedelta(minutes=10)
    minutes = int((last - lo_minute).total_seconds() // 60) + 20
    rolled, rows = [], []
    for i in range(60):
        start = lo_minute + timedelta(minutes=rng.randrange(minutes))
        end = start + timedelta(minutes=rng.randint(1, 45))
        rolled.append(Span(i, start, end, rng.choice([1.0, 1.0, 0.25, 0.6])))
    for i in range(60, 80):
        start = first + (last - first) * rng.random() - timedelta(seconds=5)
        rows.append(Span(i, start, start + timedelta(seconds=rng.uniform(0.001, 300))))
    rows.append(Span(80, first - timedelta(microseconds=1), last))  # every row
    rolled.append(Span(80, first.replace(second=0, microsecond=0), lo_minute))  # nothing there
    got = {(c.span, c.key): (c.requests, c.conflicts) for c in
           window_counts(sample_con, scope, rolled, rows)}  # fmt: skip
    want = reference_counts(sample_con, scope, rolled, rows)
    assert want, "the reference counted nothing: the spans miss the data"
    assert sum(c for _, c in want.values()) > 0, "no 409 in any span"
    assert got.keys() == want.keys()
    for k, (r, c) in want.items():
        assert got[k] == (pytest.approx(r), pytest.approx(c)), k


@pytest.mark.parametrize("scope", list(Scope), ids=lambda s: s.value)
def test_a_rule_sampled_at_many_times_equals_each_time_alone(
    sample_con: duckdb.DuckDBPyConnection, scope: Scope
) -> None:
    """One query for every time of a backtest (windows, short windows and shared history
    windows) gives each time what sampling it alone gives."""
    table = {"name": "r", "scope": scope.value, "window": "5m", "short_window": "1m",
             "history": 6, "min_history": 3, "min_count": 1}  # fmt: skip
    (rule,) = parse_alert_settings({"rules": [table]}).rules
    # Times among the 409s (some a minute apart: they share history windows), one on a minute.
    busy = [t for (t,) in sample_con.execute("SELECT ts FROM conflicts ORDER BY ts").fetchall()]
    picks = [busy[len(busy) * k // 5] + timedelta(seconds=7.5) for k in range(1, 5)]
    nows = picks + [picks[0] + timedelta(minutes=m) for m in (1, 2, 3)]
    nows.append(nows[-1].replace(second=0, microsecond=0))
    start = first_minute(sample_con)
    together = sample_rule(sample_con, rule, nows, start)
    assert all(s.counts for s in together)
    assert any(c.now.conflicts and c.short.conflicts for s in together for c in s.counts)
    assert any(c.history for s in together for c in s.counts)
    for now, sample in zip(nows, together, strict=True):
        (alone,) = sample_rule(sample_con, rule, [now], start)
        assert alone == sample
