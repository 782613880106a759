"""Store -> alerts -> channels: evaluate the rules after each batch, deliver through the outbox.

`AlertEngine(settings, store)` is what `watch` and `alerts check` use. `evaluate(now)` reads the
counts and commits state changes, events and queued deliveries in one transaction, on a cursor of
its own (one evaluation at a time), so the watcher can also evaluate or queue a test for an
`alerts check` or `alerts test` asked over its serve port while its tailer writes. Delivery runs
on another cursor: inline with `deliver(now)`, or on a background thread after `start()`, so a
slow receiver never holds up ingest.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

import duckdb
import httpx

from conflictradar.alerts.config import AlertConfig, load_alert_config
from conflictradar.alerts.counts import sample_rule
from conflictradar.alerts.evaluation import Event, compose, step_rule, with_notifications
from conflictradar.alerts.incidents import advance_incidents, channel_groups
from conflictradar.alerts.notifications import AlertItem, Notification
from conflictradar.alerts.notifiers import Outcome, build_request, send
from conflictradar.alerts.outbox import FINAL, DeliveryState, Outbox, Pending, Settled, enqueue
from conflictradar.alerts.schema import ensure_tables
from conflictradar.alerts.secrets import redact
from conflictradar.alerts.state import (
    drop_unknown_rules,
    firing_count,
    load_incidents,
    load_tracks,
    record_events,
    save_incidents,
    save_tracks,
)
from conflictradar.ingest.alert_counts import first_minute
from conflictradar.ingest.errors import DatabaseError
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store

log = logging.getLogger("conflictradar.alerts")

Clock = Callable[[], datetime]
# Counts read elsewhere for one evaluation time: a connection holding the rollups and rows the
# alert reads need (`ingest.alert_counts`), closed after the evaluation.
Reads = Callable[[datetime], contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]]


def utc_now() -> datetime:
    return datetime.now(UTC)


# The sender thread's longest sleep with nothing queued (a safety net: enqueues wake it).
IDLE_WAIT_S = 30.0


class AlertEngine:
    """Alert evaluation and delivery on the store's database (the single writer's process)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        config: AlertConfig | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        reads: Reads | None = None,
    ) -> None:
        self.config = config if config is not None else load_alert_config(settings, env)
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        # Where the counts come from: the store itself, or (`alerts check --lake`) a read-only
        # copy of another store's rollups; the alert state stays in `store` either way.
        self.reads = reads
        try:
            with store.transaction() as con:
                ensure_tables(con)
                drop_unknown_rules(con, self.config.rules)
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot prepare the alerts tables in {store.path}: {exc}") from exc
        self._con = store.con.cursor()
        self._eval_con = store.con.cursor()
        for con in (self._con, self._eval_con):
            with contextlib.suppress(duckdb.Error):  # refused when the watcher locked the config
                con.execute("SET TimeZone = 'UTC'")
        self._evaluating = threading.Lock()  # one evaluation (or queueing) at a time
        self._outbox = Outbox(self._con)
        self._client = httpx.Client(follow_redirects=False)
        self._sending = threading.Lock()  # one deliver() at a time: nothing sent twice
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        dedupe = frozenset(c.name for c in self.config.channels if c.dedupe)
        self.recovered: list[Settled] = self._outbox.recover(dedupe, clock())
        for s in self.recovered:
            log.warning("delivery %s to channel %s: %s", s.key, s.channel, s.error)

    # -- evaluation --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction on the engine's evaluation cursor, one at a time."""
        with self._evaluating:
            self._eval_con.execute("BEGIN TRANSACTION")
            try:
                yield self._eval_con
            except BaseException:
                self._eval_con.execute("ROLLBACK")
                raise
            self._eval_con.execute("COMMIT")

    def evaluate(self, now: datetime) -> list[Event]:
        """Evaluate every rule at `now`; commit state, events and queued deliveries together."""
        return self.evaluate_queued(now)[0]

    def evaluate_queued(self, now: datetime) -> tuple[list[Event], list[str]]:
        """`evaluate`, and the keys of the deliveries it queued."""
        events: list[Event] = []
        keys: list[str] = []
        groups = channel_groups(self.config.rules)
        reads = self.reads(now) if self.reads is not None else contextlib.nullcontext(None)
        with reads as counted, self._transaction() as con:
            src = counted if counted is not None else con
            first = first_minute(src)
            changes: list[tuple[str, AlertItem]] = []
            for rule in self.config.rules:
                tracks = load_tracks(con, rule)
                sample = sample_rule(src, rule, [now], first)[0]
                updated, transitions = step_rule(rule, tracks, sample)
                rule_events, items = compose(src, rule, transitions, now, self.config.dashboard_url)
                save_tracks(con, rule, updated.values(), now)
                changes.extend((groups.of(rule), item) for item in items)
                events.extend(rule_events)
            incidents, messages = advance_incidents(
                load_incidents(con), changes, now, self.config, groups
            )
            save_incidents(con, incidents.values(), now)
            events = with_notifications(events, [n for _, n in messages])
            record_events(con, events)
            for group, notification in messages:
                channels = groups.channels(group, self.config.channels)
                keys.extend(enqueue(con, notification, channels, now, self.config.delivery))
        for e in events:
            if e.notify:
                log.info("%s", e.message)
        if keys:
            self._wake.set()
        return events, keys

    def firing(self) -> int:
        """How many alerts (rule x scope value) are firing."""
        with self._evaluating:
            return firing_count(self._eval_con)

    def queue(
        self, notification: Notification, now: datetime, max_age_s: float | None = None
    ) -> list[str]:
        """Queue an ad-hoc notification (the test message) for every channel; its keys."""
        policy = self.config.delivery
        if max_age_s is not None:
            policy = replace(policy, max_age_s=max_age_s)
        with self._transaction() as con:
            keys = enqueue(con, notification, self.config.channels, now, policy)
        self._wake.set()
        return keys

    def settle(
        self,
        keys: Collection[str] | None,
        wait_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Settled]:
        """Wait up to `wait_s` for the given deliveries (None: whatever is due now) to be final;
        the last outcome of each. Without the sender thread this delivers inline, retries
        included; with it (in `watch`) the thread delivers and this only watches the outbox."""
        deadline = time.monotonic() + wait_s
        if self._thread is not None and self._thread.is_alive() and keys is not None:
            self._wake.set()
            while True:
                now = self._outbox.states(keys)
                done = all(k in now and now[k].state in FINAL for k in keys)
                if done or time.monotonic() >= deadline:
                    return now
                sleep(0.02)
        last: dict[str, Settled] = {}
        while True:
            for s in self.deliver(self.clock()):
                if keys is None or s.key in keys:
                    last[s.key] = s
            tracked = keys if keys is not None else set(last)
            waiting = [k for k in tracked if k not in last or last[k].state not in FINAL]
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                return last
            nxt = self.next_due()
            delay = 0.01 if nxt is None else (nxt - self.clock()).total_seconds()
            sleep(min(max(delay, 0.01), left))

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, now: datetime) -> list[Settled]:
        """Attempt every delivery due at `now` once (retries wait for a later call)."""
        started = time.monotonic()
        settled: list[Settled] = []
        tried: set[str] = set()
        with self._sending:
            while True:
                at = now + timedelta(seconds=time.monotonic() - started)
                due = [p for p in self._outbox.due(at, limit=len(tried) + 50) if p.key not in tried]
                if not due:
                    break
                for p in due:
                    tried.add(p.key)
                    settled.append(self._attempt(p, now, started))
        for s in settled:
            if s.state in (DeliveryState.REJECTED, DeliveryState.GAVE_UP):
                log.warning("delivery to channel %s failed: %s", s.channel, s.error)
        return settled

    def _attempt(self, p: Pending, now: datetime, started: float) -> Settled:
        at = now + timedelta(seconds=time.monotonic() - started)
        channel = self.config.channel(p.channel)
        attempt_type = channel.kind.value if channel else "unknown"
        attempt = self._outbox.begin(p, attempt_type, at)
        if channel is None or channel.url is None:
            why = (
                "is no longer configured" if channel is None else f"has no URL ({channel.url_env})"
            )
            outcome = Outcome(False, False, None, f"channel {p.channel} {why}", None, 0.0)
        else:
            try:
                n = self._outbox.notification(p.notification_id)
                request = build_request(channel, n, p.key, at, self.config.dashboard_url)
                timeout = channel.timeout_s or self.config.delivery.timeout_s
                outcome = send(self._client, channel, request, timeout, at)
            except Exception as exc:  # settle the attempt rather than leave it `sending`
                error = redact(f"cannot send: {type(exc).__name__}: {exc}", channel.secrets)
                outcome = Outcome(False, False, None, error, None, 0.0)
        end = now + timedelta(seconds=time.monotonic() - started)
        return self._outbox.finish(p, attempt, outcome, end, self.config.delivery, self.rng)

    def deliver_due(self, now: datetime) -> int:
        """For `watch`: with the sender thread running, wake it and return 0 at once; otherwise
        deliver inline and return the number of attempts made."""
        if self._thread is not None and self._thread.is_alive():
            self._wake.set()
            return 0
        return len(self.deliver(now))

    def next_due(self) -> datetime | None:
        return self._outbox.next_due()

    def open_states(self) -> dict[str, Settled]:
        """Where each delivery still queued or under way stands (its last attempt's outcome)."""
        return self._outbox.open_states()

    def open_deliveries(self) -> int:
        """Deliveries still queued or under way."""
        return self._outbox.open_count()

    # -- background sender -------------------------------------------------------------------

    def start(self) -> AlertEngine:
        """Run deliveries on a background thread (woken by `evaluate` and by due retries)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="conflictradar-outbox", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.deliver(self.clock())
                nxt = self.next_due()
            except Exception as exc:  # keep sending later; the outbox keeps what is owed
                secrets = [s for c in self.config.channels for s in c.secrets]
                log.error(
                    "alert delivery failed: %s", redact(f"{type(exc).__name__}: {exc}", secrets)
                )
                nxt = None
            # Nothing queued: sleep until something is (every enqueue sets `_wake`); polling the
            # outbox every second cost ~0.7% of a core in an idle watcher.
            wait = IDLE_WAIT_S
            if nxt is not None:
                wait = min(1.0, max(0.005, (nxt - self.clock()).total_seconds()))
            self._wake.wait(wait)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout_s)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._client.close()
        with self._evaluating:
            self._eval_con.close()
        self._con.close()

    def __enter__(self) -> AlertEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
