"""Whether the watcher reads small appends now or leaves them for a batch (`[watch] batch_wait`).

A look that reads costs ~60-70 ms of CPU whether it brings 80 lines or 800 (measured), and a
fleet's look (two gateway and two service logs, linked) ~270 ms whether it brings 1,900 lines or
3,800. So under `batch_wait` (the watcher's default: 5 s), a look that finds only small appends
to files it has read before leaves them for a later look, as a log shipper batches: that toll is
paid once per batch_wait instead of every look. They are read at once, with every other changed
file, when any of these holds: one file holds BATCH_BYTES unread, or all of them TOTAL_BYTES;
the oldest has waited batch_wait; the unread bytes hold a surge of "409"s (ingest.surge:
explained and alerted on within a look); or, decided by the watcher (ingest.tail) before it asks
here, a file is new, shrank, moved away or ends in a line left unterminated, or a reader asked
for everything appended so far.
1 MiB a file: 1,000 lines/s of access log (~200 B each) waits batch_wait; 10,000 lines/s is read
at every look, as without batching (`python -m bench.watch_cost`: 3.2% and ~20% of a core). The
bound is per file, not the files' sum, because a look's toll grows with the files it reads: a
sum made a fleet of four logs at 1,000 lines/s in all read every ~3.8 s instead of every
batch_wait (`python -m bench.watch_cost --fleet --rates 1000`: 11.2% of a core before, 10.6-10.7%
after, in the same session; most of a fleet's cost is then per line).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence

from conflictradar.ingest import surge

BATCH_BYTES = 1024 * 1024  # unread in one file
# Unread in all the changed files together: bounds a look's size, and what each look re-reads
# to count the "409"s of what waits.
TOTAL_BYTES = 4 * BATCH_BYTES


class Batcher:
    """The watcher's batching state: what waits since when, and the recent rate of 409s."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s  # the longest an append waits; 0: read at every look
        self.waiting_since: float | None = None  # when the oldest unread append was first seen
        self.last_full = -float("inf")  # when the latest look that left nothing unread began
        # (when, "409"s, seconds they came in) of the recent reads that counted them
        self.seen: deque[tuple[float, int, float]] = deque()

    def waits(self, unread: Sequence[tuple[int, int, int]], now: float) -> bool:
        """Whether the appends `unread` ((descriptor, from, to) of each changed file, all small
        appends to files read before) wait for a later look."""
        sizes = [end - start for _, start, end in unread]
        total = sum(sizes)
        if total > TOTAL_BYTES:
            return False  # a backlog: not worth counting
        try:  # "409"s in what waits: over-counting (an id, a size) only reads sooner
            found = sum(os.pread(fd, end - start, start).count(b"409")
                        for fd, start, end in unread)  # fmt: skip
        except OSError:
            return False
        span = min(surge.RATE_S, max(1e-3, now - self.last_full))  # since what waits arrived
        seen = self.seen
        while seen and seen[0][0] < now - surge.RATE_S:
            seen.popleft()
        # Per second, over what the last minute's reads covered (from the start of the first;
        # at least 10 s of it, so that a burst or a chunk read moments ago is not a rate).
        covered = now - (seen[0][0] - seen[0][2]) if seen else 0.0
        usual = sum(n for _, n, _ in seen) / max(surge.RATE_S / 6, covered)
        waited = self.waiting_since is not None and now - self.waiting_since >= self.wait_s
        full = max(sizes, default=0) >= BATCH_BYTES or total >= TOTAL_BYTES
        if full or waited or surge.surging(found, usual, span):
            # A log busy with 409s makes them usual within a minute, and then batches too.
            seen.append((now, found, span))
            return False
        if self.waiting_since is None:
            self.waiting_since = now
        return True

    def read_all(self, started: float) -> None:
        """The look begun at `started` reads everything appended: nothing waits."""
        self.waiting_since = None
        self.last_full = started
