"""The watcher's own cost, logged every minute with `watch -v`: lines/s, batch latency, CPU%, RSS,
and what the alert evaluations took of it.

CPU is this process's user + system time (all threads, `getrusage`), as % of one core over the
interval, so it reads the same on a busy machine as on an idle one. The alert evaluations' share
is the CPU time of the thread that runs them (with the default `[watch] threads = 1` the
watcher's DuckDB runs their queries on that thread; with more, it reads low): the part of the
watcher's cost that grows with the history the rules look back on.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

log = logging.getLogger("conflictradar.watch")

STATS_EVERY_S = 60.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float | None:
    """Resident memory now (Linux /proc), or None where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class WatchStats:
    """Counts looks that read lines and their durations; `tick()` logs and resets each interval."""

    def __init__(self, every_s: float = STATS_EVERY_S) -> None:
        self.every_s = every_s
        self._reset(time.monotonic(), cpu_seconds())

    def _reset(self, now: float, cpu: float) -> None:
        self.since, self.cpu_since = now, cpu
        self.lines = 0
        self.durations: list[float] = []
        self.alert_evaluations = 0
        self.alert_cpu = 0.0
        self.alert_max = 0.0

    def batch(self, lines: int, seconds: float) -> None:
        """One look that read `lines` lines and took `seconds`, commit and classification
        included (the time from a look's start until its lines are explained)."""
        if lines:
            self.lines += lines
            self.durations.append(seconds)

    def alerts(self, seconds: float, cpu_seconds: float) -> None:
        """One alert evaluation (deliveries due included): its wall time and its thread's CPU."""
        self.alert_evaluations += 1
        self.alert_cpu += cpu_seconds
        self.alert_max = max(self.alert_max, seconds)

    def summary(self, now: float, cpu: float) -> dict[str, object]:
        elapsed = max(now - self.since, 1e-9)
        ordered = sorted(self.durations)
        out: dict[str, object] = {
            "interval_s": round(elapsed, 1),
            "lines": self.lines,
            "lines_per_s": round(self.lines / elapsed, 1),
            "batches": len(ordered),
            "cpu_pct": round(100 * (cpu - self.cpu_since) / elapsed, 2),
            "rss_mb": rss_mb(),
        }
        if ordered:
            out |= {
                "batch_ms_p50": round(1000 * _percentile(ordered, 50), 1),
                "batch_ms_p95": round(1000 * _percentile(ordered, 95), 1),
                "batch_ms_max": round(1000 * ordered[-1], 1),
            }
        if self.alert_evaluations:
            out |= {
                "alert_evaluations": self.alert_evaluations,
                "alert_cpu_pct": round(100 * self.alert_cpu / elapsed, 2),
                "alert_ms_max": round(1000 * self.alert_max, 1),
            }
        return out

    def tick(self) -> dict[str, object] | None:
        """Log the interval's figures once it is over (and start the next); else None."""
        now = time.monotonic()
        if now - self.since < self.every_s:
            return None
        cpu = cpu_seconds()
        out = self.summary(now, cpu)
        log.info("stats", extra=out)
        self._reset(now, cpu)
        return out
