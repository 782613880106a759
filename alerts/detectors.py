"""Counts -> verdicts: does a scope's 409 count in the window stand out? Pure functions.

`threshold` fires at `min_count`. `baseline` also needs the count to sit `deviation` robust
standard deviations above the median of the same window's history. The spread is the larger of
1.4826 x MAD (the median absolute deviation, scaled to a normal's sigma) and the Poisson noise
of the median (sqrt(median), at least 1), because 409 counts are small integers whose history is
often all zeros: a MAD of 0 would make any single 409 infinitely unusual.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.rules import DetectorKind, Rule

MAD_TO_SIGMA = 1.4826
# Fewer history windows than this (a new database) and the baseline is not trusted: the rule
# then fires on `min_count` alone, and says so.
MIN_HISTORY = 3


@dataclass(frozen=True)
class Verdict:
    """What a detector concluded for one scope at one evaluation."""

    active: bool
    value: int
    baseline: float | None
    score: float | None  # robust deviations above the baseline
    reason: str


def robust_spread(history: Sequence[int]) -> tuple[float, float]:
    """(median, spread) of past counts: spread = max(1.4826 MAD, sqrt(median), 1)."""
    median = float(statistics.median(history))
    mad = float(statistics.median(abs(h - median) for h in history))
    return median, max(MAD_TO_SIGMA * mad, math.sqrt(median), 1.0)


def _window(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def detect(rule: Rule, value: int, history: Sequence[int]) -> Verdict:
    """Apply the rule's detector to the current window's count and its history."""
    window = _window(rule.window_s)
    floor = value >= rule.min_count
    if rule.detector is DetectorKind.THRESHOLD:
        relation = "reached" if floor else "is below"
        return Verdict(
            floor,
            value,
            None,
            None,
            f"{value} 409s in {window} {relation} the threshold of {rule.min_count}",
        )
    if len(history) < MIN_HISTORY:
        relation = "reached" if floor else "is below"
        return Verdict(
            floor,
            value,
            None,
            None,
            f"{value} 409s in {window} {relation} the floor of {rule.min_count}; "
            f"only {len(history)} past windows, too few for a baseline",
        )
    median, spread = robust_spread(history)
    score = (value - median) / spread
    stands_out = score >= rule.deviation
    base = f"{value} 409s in {window} vs a baseline of {median:g} ({score:+.1f} deviations"
    if floor and stands_out:
        reason = f"{base}, threshold {rule.deviation:g}; floor {rule.min_count} reached)"
    elif stands_out:
        reason = f"{base}) but below the floor of {rule.min_count}"
    else:
        reason = f"{base}, needs {rule.deviation:g})"
    return Verdict(floor and stands_out, value, median, score, reason)


def window_text(seconds: float) -> str:
    """`300` -> `5m`; for messages."""
    return _window(seconds)
