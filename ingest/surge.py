"""A surge of 409s: more than the recent rate predicts. One rule for the watcher's batching
(a burst waiting to be read is read at once: ingest.batching) and for its alert pace (the rules
are evaluated early: watch.AlertPace), so a spike is explained and paged within seconds."""

from __future__ import annotations

SURGE_MIN = 5  # fewer 409s than this are never a surge, whatever the usual rate
RATE_S = 60.0  # the usual rate is that of the last minute


def surging(count: int, rate_per_s: float, span_s: float) -> bool:
    """Whether `count` 409s that came in over `span_s` seconds are a surge at a usual rate of
    `rate_per_s`: at least SURGE_MIN and twice what that rate predicts over the span (counted
    at most over RATE_S: a long quiet span does not excuse a burst)."""
    return count >= max(SURGE_MIN, 2 * rate_per_s * min(span_s, RATE_S))
