"""Live output for the demo: the batch engine on the wall clock, appending to the same file names.

Each line is written (and flushed) when its request would have been logged. Gateway node B
buffers its access log like nginx's `access_log ... buffer=32k flush=3s`, so its lines arrive a
few seconds late: a race's winner from node B often lands after the loser on node A.
labels.csv and spikes.csv are appended as lines and spikes complete.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from conflictradar.sample_logs.engine import new_engine, step
from conflictradar.sample_logs.formats import format_line, iso_utc
from conflictradar.sample_logs.generate import LABELS_HEADER, SPIKES_HEADER, in_spike
from conflictradar.sample_logs.model import FILES, SECOND, Request, Spike
from conflictradar.sample_logs.spikes import GLOBAL, MIN_SPIKE_CONFLICTS
from conflictradar.sample_logs.timing import written_at

BUFFERED_SOURCE = "orders-gw-b.log"
BUFFER_FLUSH_US = 3 * SECOND
TICK_S = 0.1
SPIKE_SETTLE_US = 10 * SECOND  # a spike's last 409s are written (node B's buffer included)
SPIKE_SHARE = 0.3


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _open_csv(path: Path, header: str) -> TextIO:
    fresh = not path.exists() or path.stat().st_size == 0
    handle = path.open("a", encoding="utf-8")
    if fresh:
        handle.write(header)
        handle.flush()
    return handle


class _Sink:
    """Open output files, their line counts and the running spike tallies."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.lines = {f.name: _count_lines(out / f.name) for f in FILES}
        self.logs = {f.name: (out / f.name).open("a", encoding="utf-8") for f in FILES}
        self.labels = _open_csv(out / "labels.csv", LABELS_HEADER)
        self.spikes = _open_csv(out / "spikes.csv", SPIKES_HEADER)
        self.hits: dict[Spike, list[str]] = {}

    def write(self, req: Request, plan: list[Spike]) -> None:
        n = self.lines[req.source] + 1
        self.lines[req.source] = n
        log = self.logs[req.source]
        log.write(format_line(req, n) + "\n")
        log.flush()
        if req.status == 409:
            self.labels.write(f"{req.source},{n},{req.cause}\n")
            self.labels.flush()
            for spike in plan:
                if in_spike(spike, req):
                    self.hits.setdefault(spike, []).append(req.source)

    def close_spike(self, spike: Spike) -> None:
        hits = self.hits.pop(spike, [])
        files = sorted(set(hits))
        where = "*" if spike.scope == GLOBAL or len(files) > 2 else ";".join(files)
        self.spikes.write(
            f"{iso_utc(spike.start_us, 0)},{iso_utc(spike.end_us, 0)},{spike.scope},"
            f"{len(hits)},{where}\n"
        )
        self.spikes.flush()

    def close(self) -> None:
        for handle in (*self.logs.values(), self.labels, self.spikes):
            handle.close()


def run_live(
    out_dir: Path,
    *,
    seed: int,
    rate: float,
    spike_every_s: float,
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """Append about `rate` lines per second to the sample files until `stop` is set."""
    start = int(clock() * SECOND)
    engine = new_engine(
        seed,
        start_us=start,
        lines_per_s=rate,
        daily=False,
        spike_plan=[],
        live_every_us=int(spike_every_s * SECOND),
    )
    # A live spike is an incident to see: its 409s come to about a third of the traffic while it
    # lasts (at least MIN_SPIKE_CONFLICTS), whatever the rate, so it stands out on the endpoint.
    length_s = max(1.0, min(120.0, spike_every_s / 3))
    engine.spike_least = max(MIN_SPIKE_CONFLICTS, int(SPIKE_SHARE * rate * length_s))
    sink = _Sink(out_dir)
    pending: list[tuple[int, int, Request]] = []
    held: list[Request] = []
    next_flush = start + BUFFER_FLUSH_US
    closed: set[Spike] = set()
    try:
        while not stop.is_set():
            now = int(clock() * SECOND)
            stories, background = step(engine, now)
            for r in (*stories, *background):
                heapq.heappush(pending, (written_at(r), r.seq, r))
            while pending and pending[0][0] <= now:
                r = heapq.heappop(pending)[2]
                if r.source == BUFFERED_SOURCE:
                    held.append(r)
                else:
                    sink.write(r, engine.spikes)
            if now >= next_flush:
                for r in held:
                    sink.write(r, engine.spikes)
                held.clear()
                next_flush = now + BUFFER_FLUSH_US
            for spike in engine.spikes:
                if spike not in closed and now > spike.end_us + SPIKE_SETTLE_US:
                    sink.close_spike(spike)
                    closed.add(spike)
            stop.wait(TICK_S)
    finally:
        # Leave no labelled 409 without the requests that decided it (also on Ctrl-C): write
        # everything that has started, the buffered node's lines included.
        now = int(clock() * SECOND)
        started = sorted((p for p in pending if p[2].start_us <= now), key=lambda p: p[:2])
        for r in (*held, *(p[2] for p in started)):
            sink.write(r, engine.spikes)
        sink.close()
