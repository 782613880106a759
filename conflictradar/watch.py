"""`conflictradar watch`: wires the store, the tailer, the read server and alert evaluation."""

from __future__ import annotations

import logging
import signal
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Protocol

from conflictradar.ingest import surge
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.serve import QueryServer, announce_starting, withdraw
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from conflictradar.ingest.tail import Tailer
from conflictradar.watch_stats import WatchStats

log = logging.getLogger("conflictradar.watch")

MAINTENANCE_EVERY_S = 60.0


class AlertPace:
    """When `watch` evaluates the alert rules. An evaluation costs 20-35 ms: every 2 s, as
    before, that was ~1.5% of a core on its own at 100 lines/s. So the rules are evaluated every
    EVERY_S, lines or not (alerts also resolve as time passes), and sooner, at most every GAP_S,
    when 409s surge (ingest.surge: at least SURGE_MIN since the last evaluation and twice what
    the last minute's typical look predicts; the median, which bursts do not raise). A burst is
    judged within a look or two; steady 409 traffic waits for the next evaluation, which would
    see nothing new."""

    EVERY_S = 10.0
    GAP_S = 2.0

    def __init__(self) -> None:
        self.last = -float("inf")
        self.unevaluated = 0  # 409 lines since the last evaluation
        self.counted_from: float | None = None  # when the first of them may have been appended
        self.recent: deque[tuple[float, int]] = deque()  # (time, 409 lines) of recent looks

    def due(self, now: float, conflicts: int, read: bool = True) -> bool:
        """Whether to evaluate now, after a look that read `conflicts` 409 lines. `read`:
        whether the look read at all (a look that left small appends waiting for a batch,
        `[watch] batch_wait`, is not a look of no 409s: the typical look is of those that read)."""
        self.unevaluated += conflicts
        while self.recent and self.recent[0][0] < now - surge.RATE_S:
            self.recent.popleft()
        rate = 0.0
        if len(self.recent) >= 3:
            span = (self.recent[-1][0] - self.recent[0][0]) / (len(self.recent) - 1)
            rate = statistics.median(n for _, n in self.recent) / max(span, 1e-3)
        since = now - self.last
        if read:
            # The unevaluated 409s were appended since the look that read before the first of
            # them (a batch holds several looks' worth): the typical rate is expected over that.
            if conflicts and self.counted_from is None:
                self.counted_from = self.recent[-1][0] if self.recent else self.last
            self.recent.append((now, conflicts))
        span = since if self.counted_from is None else now - self.counted_from
        spiking = surge.surging(self.unevaluated, rate, span)
        if since >= self.EVERY_S or (since >= self.GAP_S and spiking):
            self.last, self.unevaluated, self.counted_from = now, 0, None
            return True
        return False


class WatchExtra(Protocol):
    """Something that runs beside the watch loop: the stdin spool, the metrics endpoint."""

    def start(self, store: Store, ingester: Ingester, stop: threading.Event) -> None: ...

    def on_batch(self, lines: int) -> None: ...

    def close(self) -> None: ...


def _alert_hook(
    settings: Settings, store: Store, server: QueryServer
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """The alert engine's per-batch evaluation and its shutdown. Deliveries run in the engine's
    own sender thread, so a slow receiver never holds up ingest. The engine also answers other
    processes' `alerts test` and `alerts check` over the serve port (alerts.actions)."""
    from conflictradar.alerts.actions import offer_actions
    from conflictradar.alerts.engine import AlertEngine

    engine = AlertEngine(settings, store).start()
    offer_actions(server, engine)

    def evaluate(lines: int) -> None:
        try:
            now = datetime.now(UTC)
            engine.evaluate(now)
            engine.deliver_due(now)
        except Exception as exc:  # alerting trouble must never stop ingest
            log.error("alert evaluation failed", extra={"error": str(exc)})

    return evaluate, engine.close


def run_watch(settings: Settings, paths: list[str], log_format: str | None, alerts: bool,
              extras: Sequence[WatchExtra] = ()) -> int:  # fmt: skip
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    announce_starting(settings.db)
    try:
        store = Store.open(settings.db, wait_s=30.0, sandboxed=True,
                           memory_limit=settings.watch.memory_limit,
                           threads=settings.watch.threads)  # fmt: skip
    except BaseException:
        withdraw(settings.db)
        raise
    with store:
        ingester = Ingester(store, settings, forced=log_format, classify_later=True)
        # Served queries run inside the watcher's DuckDB, under its memory limit.
        served = replace(settings.sql, memory_limit=settings.watch.memory_limit)
        server = QueryServer(store.con, settings.db, served)
        server.start()
        hook, close_alerts = _alert_hook(settings, store, server) if alerts else (None, None)
        for extra in extras:
            extra.start(store, ingester, stop)
        last_maintenance = time.monotonic()
        pace = AlertPace()
        stats = WatchStats()

        def on_batch(lines: int) -> None:
            nonlocal last_maintenance
            stats.batch(lines, tailer.last_look_s)
            if hook is not None and pace.due(time.monotonic(), tailer.last_conflicts,
                                             read=not tailer.last_waited):  # fmt: skip
                started, cpu = time.monotonic(), time.thread_time()
                hook(lines)
                stats.alerts(time.monotonic() - started, time.thread_time() - cpu)
            for extra in extras:
                extra.on_batch(lines)
            if time.monotonic() - last_maintenance >= MAINTENANCE_EVERY_S:
                last_maintenance = time.monotonic()
                maintain(settings, store, ingester)
            stats.tick()

        tailer = Tailer(store, ingester, paths, settings.watch.poll_interval_s, on_batch,
                        settings.watch.cpu_budget, settings.watch.batch_wait_s)  # fmt: skip
        server.before_read = tailer.catch_up
        budget = settings.watch.cpu_budget
        print(f"conflictradar: watching {', '.join(paths)} into {settings.db} "
              f"(reads served on 127.0.0.1:{server.port}"
              + (f"; CPU budget {100 * budget:g}% of a core" if budget else "")
              + "); Ctrl-C to stop", file=sys.stderr)  # fmt: skip
        try:
            tailer.run(stop)
        finally:
            if close_alerts is not None:
                close_alerts()
            for extra in extras:
                extra.close()
            server.stop()
    return 0


def maintain(settings: Settings, store: Store, ingester: Ingester) -> None:
    """Periodic upkeep: learn endpoint folds, prune beyond retention."""
    ingester.learn_folds()
    if settings.watch.retention_days > 0:
        before = datetime.now(UTC) - timedelta(days=settings.watch.retention_days)
        pruned = store.prune(before)
        if pruned:
            log.info("pruned old rows", extra={"rows": pruned, "before": before.isoformat()})
