"""`conflictradar watch`: wires the store, the tailer, the read server and alert evaluation."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Protocol

from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.serve import QueryServer, announce_starting, withdraw
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from conflictradar.ingest.tail import Tailer
from conflictradar.watch_stats import WatchStats

log = logging.getLogger("conflictradar.watch")

MAINTENANCE_EVERY_S = 60.0
# Alerts are evaluated this often, lines or not (so alerts also resolve as time passes). Their
# windows are minutes long, so this adds at most this much to a detection; an evaluation costs
# 20-35 ms, which every 2 s was ~1.5% of a core on its own.
EVALUATE_EVERY_S = 10.0


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
        last_evaluation = 0.0
        unevaluated = 0  # lines committed since the last alert evaluation
        stats = WatchStats()

        def on_batch(lines: int) -> None:
            nonlocal last_maintenance, last_evaluation, unevaluated
            stats.batch(lines, tailer.last_look_s)
            unevaluated += lines
            if hook is not None and time.monotonic() - last_evaluation >= EVALUATE_EVERY_S:
                last_evaluation = time.monotonic()
                hook(unevaluated)
                unevaluated = 0
            for extra in extras:
                extra.on_batch(lines)
            if time.monotonic() - last_maintenance >= MAINTENANCE_EVERY_S:
                last_maintenance = time.monotonic()
                maintain(settings, store, ingester)
            stats.tick()

        tailer = Tailer(store, ingester, paths, settings.watch.poll_interval_s, on_batch)
        print(f"conflictradar: watching {', '.join(paths)} into {settings.db} "
              f"(reads served on 127.0.0.1:{server.port}); Ctrl-C to stop", file=sys.stderr)  # fmt: skip
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
