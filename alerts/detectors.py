"""Counts -> verdicts: does a scope's 409 RATE in the window stand out? Pure functions.

`threshold` fires when the window holds `min_count` 409s. `baseline` judges the rate (409s /
requests), so more traffic at the same rate pages no one. A window fires when all three hold:

- the window holds at least `min_count` 409s (a floor: a jump from 1 to 3 means nothing);
- its rate is at least `ratio` times the baseline rate (a burn-rate style factor: a real spike
  multiplies the error ratio, it does not nudge it);
- its rate stands `deviation` robust deviations above the baseline rate. The baseline is the
  median of the rates of the past windows that had traffic. The deviation is sized for the
  current window's request count n: sqrt(D p (1 - p) / n), binomial noise at the baseline rate p
  widened by the dispersion D >= 1 of the past rates, (1.4826 x their MAD)^2 over the binomial
  variance at their usual volume (409s come in bursts: a client retries into another 409). So
  a window of few requests needs a bigger jump, a busy one is judged on its own precision, and
  an all-zero history does not make a single 409 infinitely unusual.

A rule judges two windows, as SRE multi-window burn-rate alerts do: the short window (1m) on its
own history catches a sharp spike at once; the long window (5m) catches a slower or low-traffic
one, and counts only while the short window's rate is still `ratio` above the long baseline, so
an alert resets within a minute of the spike's end instead of a long window later.

With fewer than `min_history` past windows since the data began (a new database) there is
no baseline, and the rule stays silent and says so: a cold start pages no one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from conflictradar.alerts.counts import Tally, WindowCount
from conflictradar.alerts.rules import DetectorKind, Rule

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Verdict:
    """What a detector concluded for one scope at one evaluation."""

    active: bool
    value: int  # 409s in the window
    baseline: float | None  # the baseline 409 rate (None: threshold, or too little history)
    score: float | None  # robust deviations above the baseline rate
    reason: str
    rate: float | None = None  # the window's 409 rate (None: no requests)
    requests: int = 0
    warming: bool = False  # too little history for a baseline


@dataclass(frozen=True)
class Baseline:
    rate: float  # median past rate
    dispersion: float  # how much more past rates wander than binomial noise explains (>= 1)
    floor: float  # one 409 over all past requests: the least rate the noise term assumes
    windows: int


def _binomial(p: float, requests: float) -> float:
    return p * (1.0 - min(p, 0.999)) / max(requests, 1.0)


def baseline_of(history: Sequence[Tally]) -> Baseline | None:
    """The robust baseline of past windows with traffic (None: none had any)."""
    seen = [h for h in history if h.requests > 0]
    if not seen:
        return None
    rates = [h.rate for h in seen]
    median = float(statistics.median(rates))
    mad = float(statistics.median(abs(r - median) for r in rates))
    floor = 1.0 / max(sum(h.requests for h in seen), 1.0)
    # 409s come in bursts (a client retries into another 409), so rates wander more than
    # binomial noise says: measure by how much at the past windows' usual volume.
    typical = float(statistics.median(h.requests for h in seen))
    noise = _binomial(max(median, floor), typical)
    dispersion = max(1.0, (MAD_TO_SIGMA * mad) ** 2 / noise) if noise > 0 else 1.0
    return Baseline(median, dispersion, floor, len(rates))


def spread_at(base: Baseline, requests: float) -> float:
    """The rate's robust deviation for a window of `requests`: binomial noise at the baseline
    rate, widened by the past windows' dispersion."""
    return math.sqrt(base.dispersion * _binomial(max(base.rate, base.floor), requests))


def fire_rate(rule: Rule, base: Baseline, requests: float) -> float:
    """The least 409 rate that would fire (ignoring the floor of `min_count`)."""
    return max(base.rate + rule.deviation * spread_at(base, requests), rule.ratio * base.rate)


def _window(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def pct(rate: float) -> str:
    """`0.043` -> `4.3%`, `0.25` -> `25%`: for messages."""
    return f"{100 * rate:.0f}%" if rate >= 0.1 else f"{100 * rate:.2g}%"


def can_fire(rule: Rule, count: WindowCount) -> bool:
    """Whether `detect_windows` could find `count` active: a window fires only on its floor
    (`min_count` 409s in the long window, twice that in the short one), whatever its history.
    Most scope values of a busy rule (endpoints, clients) have no 409 at all, so the engine
    skips the rest of the judging for those without an alert to carry on."""
    if round(count.now.conflicts) >= rule.min_count:
        return True
    both = rule.detector is not DetectorKind.THRESHOLD and rule.short_window_s < rule.window_s
    return both and round(count.short.conflicts) >= 2 * rule.min_count


def detect_windows(rule: Rule, count: WindowCount) -> Verdict:
    """Both windows of a rule (SRE multi-window alerting): the short window on its own history,
    or the long window confirmed by the short one standing `ratio` above the long baseline."""
    slow = detect(rule, count.now, count.history)
    if rule.detector is DetectorKind.THRESHOLD or rule.short_window_s >= rule.window_s:
        return slow
    # The short window is noisier (fewer requests): it needs twice the floor on its own.
    fast = detect(rule, count.short, count.short_history, rule.short_window_s, 2 * rule.min_count)
    if fast.active:
        return fast
    if slow.active and slow.baseline is not None:
        short_rate = count.short.rate
        if count.short.requests > 0 and short_rate >= rule.ratio * slow.baseline and short_rate > 0:
            return slow
        back = pct(short_rate)
        why = f"{slow.reason}; but the last {_window(rule.short_window_s)} is back to {back}"
        return replace(slow, active=False, reason=why)
    return fast if slow.warming and not fast.warming else slow


def detect(
    rule: Rule,
    now: Tally,
    history: Sequence[Tally],
    window_s: float | None = None,
    min_count: int | None = None,
) -> Verdict:
    """Apply the rule's detector to one window's counts and its history."""
    least = rule.min_count if min_count is None else min_count
    window = _window(rule.window_s if window_s is None else window_s)
    value = round(now.conflicts)
    requests = round(now.requests)
    rate = now.rate if now.requests > 0 else None
    floor = value >= least
    counted = f"{value} 409s in {window}"
    if rate is not None:
        counted += f" ({pct(rate)} of {requests} requests)"
    if rule.detector is DetectorKind.THRESHOLD:
        relation = "reached" if floor else "is below"
        reason = f"{counted} {relation} the threshold of {rule.min_count}"
        return Verdict(floor, value, None, None, reason, rate, requests)
    if len(history) < rule.min_history:
        reason = (
            f"{counted}; collecting history: {len(history)} of {rule.min_history} past windows, "
            "silent until then"
        )
        return Verdict(False, value, None, None, reason, rate, requests, warming=True)
    # No traffic in any past window (a new endpoint): the baseline is "no 409s".
    base = baseline_of(history) or Baseline(0.0, 1.0, 1.0, 0)
    r = rate or 0.0
    score = (r - base.rate) / spread_at(base, now.requests)
    times = r / base.rate if base.rate > 0 else math.inf
    stands_out = (
        score >= rule.deviation and r >= rule.ratio * base.rate and r - base.rate >= rule.min_rise
    )
    head = f"{counted} vs a baseline rate of {pct(base.rate)} ({score:+.1f} deviations, " + (
        f"{times:.1f}x" if math.isfinite(times) else "none before"
    )
    if floor and stands_out and rate is not None:
        reason = f"{head}; needs {rule.deviation:g} and {rule.ratio:g}x; floor {least} reached)"
    elif stands_out and rate is not None:
        reason = f"{head}) but below the floor of {least}"
    else:
        reason = f"{head}; needs {rule.deviation:g} deviations and {rule.ratio:g}x)"
    active = floor and stands_out and rate is not None
    return Verdict(active, value, base.rate, score, reason, rate, requests)


def window_text(seconds: float) -> str:
    """`300` -> `5m`; for messages."""
    return _window(seconds)
