"""Store -> detectors: requests and 409s per scope value in a rule's window and its history.

Each rule counts two windows (the long `window` and the `short_window`). A window is the
sliding (now - window, now]: its whole minutes come from the rollups, the
minute it starts in counts in proportion to how much of it is inside, and the minute under way
is counted from the rows. History windows end `(k - 1) * step` before the window's start minus a one-window gap (k = 1..
history) and are summed from the rollups; those that start before the database's first request
are left out rather than counted as quiet. The SQL lives in `ingest.alert_counts`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from conflictradar.alerts.rules import Rule, Scope
from conflictradar.ingest.alert_counts import TOTAL, ScopeCount, Span, window_counts

GLOBAL_KEY = TOTAL
MINUTE = timedelta(minutes=1)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Tally:
    """Requests and 409s in one window (fractional where a minute is partly inside)."""

    requests: float = 0.0
    conflicts: float = 0.0

    @property
    def rate(self) -> float:
        return self.conflicts / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class WindowCount:
    key: str
    now: Tally  # the (long) window
    history: tuple[Tally, ...]  # newest first; only windows after the data's first minute
    short: Tally = Tally()  # the short window
    short_history: tuple[Tally, ...] = ()

    @property
    def value(self) -> int:
        return round(self.now.conflicts)


@dataclass(frozen=True)
class Sample:
    """Counts for one rule at one evaluation time, for every scope value with 409s or history."""

    now: datetime
    counts: tuple[WindowCount, ...]

    def get(self, key: str) -> WindowCount:
        found = self._by_key.get(key)
        return found if found is not None else WindowCount(key, Tally(), ())

    @functools.cached_property
    def _by_key(self) -> dict[str, WindowCount]:
        # A rule scoped by client or endpoint has thousands of values on real traffic, each
        # looked up once an evaluation: a scan per lookup made that quadratic.
        return {c.key: c for c in self.counts}


def floor_minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def current_spans(window_s: float, now: datetime, i: int) -> tuple[list[Span], list[Span]]:
    """(rollup spans, row spans) that make up the window (now - window, now], ids `i`."""
    window = timedelta(seconds=window_s)
    m = floor_minute(now)
    if m == now:
        return [Span(i, now - window, now)], []
    part = (now - m) / MINUTE
    rolled = [Span(i, m - window, m - window + MINUTE, 1.0 - part)]
    if window > MINUTE:
        rolled.append(Span(i, m - window + MINUTE, m))
    return rolled, [Span(i, m - _TICK, now)]


def history_spans(
    window_s: float, step_s: float, history: int, now: datetime
) -> list[tuple[int, datetime, datetime]]:
    """(k, start, end) of each history window, k = 1..history, whole minutes."""
    window = timedelta(seconds=window_s)
    step = timedelta(seconds=step_s)
    # One window's gap before the current one: a spike's first minutes are not its own baseline.
    first_end = floor_minute(now - 2 * window)
    return [(k, first_end - (k - 1) * step - window, first_end - (k - 1) * step) for k in
            range(1, history + 1)]  # fmt: skip


def _add(into: dict[tuple[int, str], Tally], rows: list[ScopeCount]) -> None:
    for r in rows:
        t = into.get((r.span, r.key), Tally())
        into[(r.span, r.key)] = Tally(t.requests + r.requests, t.conflicts + r.conflicts)


def _tally(got: dict[tuple[int, str], Tally], span: int, key: str, scope: Scope) -> Tally:
    """A key's tally in a span; for causes the denominator is all requests of the span."""
    mine = got.get((span, key), Tally())
    if scope is not Scope.CAUSE or key == TOTAL:
        return mine
    total = got.get((span, TOTAL), Tally())
    return Tally(total.requests, mine.conflicts)


Series = dict[str, tuple[Tally, tuple[Tally, ...]]]


def _windows(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    window_s: float,
    step_s: float,
    history: int,
    nows: Sequence[datetime],
    first_data: datetime | None,
) -> list[Series]:
    """Per evaluation time: each scope value's (window tally, history tallies)."""
    rolled: list[Span] = []
    rows: list[Span] = []
    for i, now in enumerate(nows):
        r, w = current_spans(window_s, now, i)
        rolled.extend(r)
        rows.extend(w)
    current: dict[tuple[int, str], Tally] = {}
    _add(current, window_counts(con, scope, rolled, rows))
    # Consecutive evaluations share most history windows: each distinct window is read once.
    ids: dict[tuple[datetime, datetime], int] = {}
    available: list[list[int]] = []
    for now in nows:
        spans = []
        for _, start, end in history_spans(window_s, step_s, history, now):
            if first_data is None or start < first_data:
                continue
            spans.append(ids.setdefault((start, end), len(ids)))
        available.append(spans)
    past: dict[tuple[int, str], Tally] = {}
    _add(past, window_counts(con, scope, [Span(i, lo, hi) for (lo, hi), i in ids.items()]))
    out: list[Series] = [{} for _ in nows]
    for i, key in current:
        if key == TOTAL and scope is not Scope.GLOBAL:
            continue
        history_of = tuple(_tally(past, j, key, scope) for j in available[i])
        out[i][key] = (_tally(current, i, key, scope), history_of)
    if scope is Scope.GLOBAL:
        for i in range(len(nows)):
            if GLOBAL_KEY not in out[i]:
                history_of = tuple(_tally(past, j, TOTAL, scope) for j in available[i])
                out[i][GLOBAL_KEY] = (Tally(), history_of)
    return out


def sample_rule(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    nows: Sequence[datetime],
    first_data: datetime | None,
) -> list[Sample]:
    """Counts for `rule` at each time in `nows`: both windows and their history, per scope value."""
    long = _windows(con, rule.scope, rule.window_s, rule.step_s, rule.history, nows, first_data)
    if rule.short_window_s < rule.window_s:
        short = _windows(con, rule.scope, rule.short_window_s, rule.short_window_s,
                         rule.history, nows, first_data)  # fmt: skip
    else:
        short = long
    out = []
    for i, now in enumerate(nows):
        counts = []
        for key in sorted(set(long[i]) | set(short[i])):
            lt, lh = long[i].get(key, (Tally(), ()))
            st, sh = short[i].get(key, (Tally(), ()))
            counts.append(WindowCount(key, lt, lh, st, sh))
        out.append(Sample(now, tuple(counts)))
    return out
