"""Store -> detectors: requests and 409s per scope value in a rule's window and its history.

Each rule counts two windows (the long `window` and the `short_window`). A window is the
sliding (now - window, now]: its whole minutes come from the rollups, the
minute it starts in counts in proportion to how much of it is inside, and the minute under way
is counted from the rows. History windows end `(k - 1) * step` before the window's start minus a one-window gap (k = 1..
history) and are summed from the rollups; those that start before the database's first request
are left out rather than counted as quiet. Both windows and all their history windows, at every
evaluation time asked, are counted in one query. The SQL lives in `ingest.alert_counts`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
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


@dataclass
class _Plan:
    """The spans of one window size at every evaluation time, before they are counted: span ids
    of the window itself at each time and of its history windows (shared between times)."""

    scope: Scope
    rolled: list[Span]
    rows: list[Span]
    current: list[int]  # per time: the id of its window
    history: list[list[int]]  # per time: the ids of its history windows with data


def _plan(
    scope: Scope,
    window_s: float,
    step_s: float,
    history: int,
    nows: Sequence[datetime],
    first_data: datetime | None,
    ids: Iterator[int],
) -> _Plan:
    plan = _Plan(scope, [], [], [], [])
    for now in nows:
        i = next(ids)
        r, w = current_spans(window_s, now, i)
        plan.rolled.extend(r)
        plan.rows.extend(w)
        plan.current.append(i)
    # Consecutive evaluations share most history windows: each distinct window is read once.
    past: dict[tuple[datetime, datetime], int] = {}
    for now in nows:
        spans = []
        for _, start, end in history_spans(window_s, step_s, history, now):
            if first_data is None or start < first_data:
                continue
            if (start, end) not in past:
                past[start, end] = next(ids)
                plan.rolled.append(Span(past[start, end], start, end))
            spans.append(past[start, end])
        plan.history.append(spans)
    return plan


def _series(
    plan: _Plan, got: dict[tuple[int, str], Tally], keys: dict[int, list[str]]
) -> list[Series]:
    """Per evaluation time: each scope value's (window tally, history tallies); `keys`: the
    scope values counted in each span."""
    scope = plan.scope
    out: list[Series] = []
    for i, past in zip(plan.current, plan.history, strict=True):
        series: Series = {}
        for key in keys.get(i, ()):
            if key == TOTAL and scope is not Scope.GLOBAL:
                continue
            series[key] = (
                _tally(got, i, key, scope),
                tuple(_tally(got, j, key, scope) for j in past),
            )
        if scope is Scope.GLOBAL and GLOBAL_KEY not in series:
            series[GLOBAL_KEY] = (Tally(), tuple(_tally(got, j, TOTAL, scope) for j in past))
        out.append(series)
    return out


def sample_rule(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    nows: Sequence[datetime],
    first_data: datetime | None,
) -> list[Sample]:
    """Counts for `rule` at each time in `nows`: both windows and their history, per scope value,
    in one query (a query's fixed cost, ~7 ms here, was most of a live evaluation's)."""
    ids = itertools.count()
    long = _plan(rule.scope, rule.window_s, rule.step_s, rule.history, nows, first_data, ids)
    plans = [long]
    if rule.short_window_s < rule.window_s:
        plans.append(_plan(rule.scope, rule.short_window_s, rule.short_window_s, rule.history,
                           nows, first_data, ids))  # fmt: skip
    got: dict[tuple[int, str], Tally] = {}
    rolled = [s for p in plans for s in p.rolled]
    rows = [s for p in plans for s in p.rows]
    _add(got, window_counts(con, rule.scope, rolled, rows))
    keys: dict[int, list[str]] = {}
    for i, key in got:
        keys.setdefault(i, []).append(key)
    long_series = _series(long, got, keys)
    short_series = _series(plans[-1], got, keys)
    out = []
    for i, now in enumerate(nows):
        counts = []
        for key in sorted(set(long_series[i]) | set(short_series[i])):
            lt, lh = long_series[i].get(key, (Tally(), ()))
            st, sh = short_series[i].get(key, (Tally(), ()))
            counts.append(WindowCount(key, lt, lh, st, sh))
        out.append(Sample(now, tuple(counts)))
    return out
