"""Evaluation -> outbox -> notifiers: durable, ordered, retried delivery of notifications.

One `alert_outbox` row per (notification, channel), queued in the same transaction as the alert
state change that caused it, so a transition is never lost and never queued twice. Its key (a
UUID derived from notification id and channel) is the `Idempotency-Key` of every attempt.

Guarantee, precisely. Before each attempt the row is committed as `sending` with a `deliveries`
row; after it, the outcome is committed. A delivery is sent again only after a recorded retryable
failure, so it is never sent twice while the process lives. If the process dies between those
two commits (a window of one HTTP request), nobody can know whether the receiver got it. On the
next start such a delivery is:
- re-sent with the same Idempotency-Key when the channel deduplicates (`alertmanager`, whose
  alerts are identified by their labels, or a `webhook` with `dedupe = true`): at least once on
  the wire, exactly once in effect;
- otherwise (`slack`, plain `webhook`) not re-sent and recorded as `in_doubt`: never twice wins,
  and the possible loss is visible in `deliveries` and in the log.
Deliveries of one rule to one channel go out in order: a later one waits while an earlier one is
still queued, so a receiver never sees "resolved" before "firing".
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import duckdb

from conflictradar.alerts.channels import Channel
from conflictradar.alerts.config import DeliveryPolicy
from conflictradar.alerts.notifications import Notification
from conflictradar.alerts.notifiers import Outcome

_KEYS = uuid.UUID("5b0e1a52-2c1f-4c43-9f0e-409409409409")


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    REJECTED = "rejected"  # a final answer (4xx, bad URL): not retried
    GAVE_UP = "gave_up"  # still failing when max_delivery_age ran out
    IN_DOUBT = "in_doubt"  # the process died mid-attempt and the channel cannot deduplicate


# States a delivery does not leave.
FINAL = frozenset(
    {DeliveryState.DELIVERED, DeliveryState.REJECTED, DeliveryState.GAVE_UP, DeliveryState.IN_DOUBT}
)


@dataclass(frozen=True)
class Pending:
    key: str
    notification_id: str
    channel: str
    rule: str
    attempts: int
    created: datetime
    deadline: datetime


@dataclass(frozen=True)
class Settled:
    """What became of one attempt (or of a delivery found mid-attempt at start-up)."""

    key: str
    channel: str
    notification_id: str
    attempt: int
    state: DeliveryState
    status: int | None
    error: str | None
    next_attempt_at: datetime | None


_BEGIN_OUTBOX = "UPDATE alert_outbox SET state = 'sending', attempts = ?, updated = ? WHERE key = ?"
_BEGIN_ATTEMPT = (
    "INSERT INTO deliveries (id, notification_id, delivery_key, channel, channel_type, attempt, ts,"
    " outcome, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, 'sending', false)"
)
_SETTLE_OUTBOX = (
    "UPDATE alert_outbox SET state = ?, next_attempt_at = coalesce(?, next_attempt_at),"
    " last_status = coalesce(?, last_status), last_error = ?, updated = ? WHERE key = ?"
)
_SETTLE_ATTEMPT = (
    "UPDATE deliveries SET outcome = ?, status_code = ?, error = ?, duration_ms = ?,"
    " next_attempt_at = ?, delivered = ? WHERE id = ?"
)
_DOUBT_ATTEMPT = (
    "UPDATE deliveries SET outcome = 'in_doubt', error = ?, delivered = NULL WHERE id = ?"
)
_SENDING = (
    "SELECT key, notification_id, channel, attempts FROM alert_outbox WHERE state = 'sending'"
    " ORDER BY created, key"
)
_RECOVER_REQUEUE = (
    "outcome unknown: the process stopped during this attempt; re-sending with the same "
    "Idempotency-Key (the receiver deduplicates)"
)
_RECOVER_DOUBT = (
    "outcome unknown: the process stopped during this attempt; not re-sent, because this "
    "channel cannot deduplicate and a notification is never sent twice"
)


def delivery_key(notification_id: str, channel: str) -> str:
    """The stable idempotency key of one notification's delivery to one channel."""
    return str(uuid.uuid5(_KEYS, f"{notification_id}/{channel}"))


def backoff_s(attempt: int, policy: DeliveryPolicy, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at retry_max."""
    base = min(policy.retry_max_s, policy.retry_initial_s * 2 ** max(0, attempt - 1))
    return base / 2 + rng.random() * base / 2


def enqueue(
    con: duckdb.DuckDBPyConnection,
    n: Notification,
    channels: tuple[Channel, ...],
    now: datetime,
    policy: DeliveryPolicy,
) -> list[str]:
    """Store the notification and queue it for each channel (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO alert_notifications VALUES (?, ?, ?, ?, ?, ?, ?)",
        [n.id, n.created, n.rule, n.status.value, n.test, len(n.alerts), n.to_json()],
    )
    deadline = now + timedelta(seconds=policy.max_age_s)
    keys = []
    for channel in channels:
        key = delivery_key(n.id, channel.name)
        con.execute(
            "INSERT INTO alert_outbox VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, NULL, NULL, ?)",
            [key, n.id, channel.name, n.rule, now, deadline, now, now],
        )
        keys.append(key)
    return keys


class Outbox:
    """The outbox on one connection (the sender's own cursor); every method commits.

    Thread-safe: a lock serialises use of the connection (never held during HTTP).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._lock = threading.Lock()

    def _commit(self, statements: list[tuple[str, list[object]]]) -> None:
        with self._lock:
            self.con.execute("BEGIN TRANSACTION")
            try:
                for sql, params in statements:
                    self.con.execute(sql, params)
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")

    def _rows(self, sql: str, params: object = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.con.execute(sql, params).fetchall()

    def due(self, now: datetime, limit: int = 50) -> list[Pending]:
        """Queued deliveries whose time has come and that no earlier delivery holds back."""
        rows = self._rows(
            """SELECT key, notification_id, channel, rule, attempts, created, deadline
               FROM alert_outbox o
               WHERE state = 'queued' AND next_attempt_at <= $now
                 AND NOT EXISTS (SELECT 1 FROM alert_outbox e
                                 WHERE e.channel = o.channel AND e.rule = o.rule
                                   AND e.state IN ('queued', 'sending')
                                   AND (e.created < o.created
                                        OR (e.created = o.created AND e.key < o.key)))
               ORDER BY created, key LIMIT $limit""",
            {"now": now, "limit": limit},
        )
        return [Pending(*row) for row in rows]

    def next_due(self) -> datetime | None:
        rows = self._rows("SELECT min(next_attempt_at) FROM alert_outbox WHERE state = 'queued'")
        return rows[0][0] if rows else None

    def open_count(self) -> int:
        rows = self._rows("SELECT count(*) FROM alert_outbox WHERE state IN ('queued', 'sending')")
        return int(rows[0][0]) if rows else 0

    def states(self, keys: Collection[str]) -> dict[str, Settled]:
        """Where the given deliveries stand now (for one sent by another thread)."""
        return self._states("list_contains($keys, key)", {"keys": list(keys)})

    def open_states(self) -> dict[str, Settled]:
        """Where the deliveries still queued or under way stand, oldest first."""
        return self._states("state IN ('queued', 'sending')")

    def _states(self, where: str, params: object = None) -> dict[str, Settled]:
        rows = self._rows(
            "SELECT key, channel, notification_id, attempts, state, last_status, last_error,"
            f" next_attempt_at FROM alert_outbox WHERE {where} ORDER BY created, key",
            params,
        )
        return {
            key: Settled(
                key,
                channel,
                nid,
                int(attempts),
                DeliveryState(state),
                status,
                error,
                next_at if state == DeliveryState.QUEUED else None,
            )
            for key, channel, nid, attempts, state, status, error, next_at in rows
        }

    def notification(self, notification_id: str) -> Notification:
        rows = self._rows("SELECT body FROM alert_notifications WHERE id = ?", [notification_id])
        if not rows:
            raise LookupError(f"notification {notification_id} is not stored")
        return Notification.from_json(rows[0][0])

    def begin(self, p: Pending, channel_type: str, now: datetime) -> int:
        """Durably mark the attempt as under way (before any byte is sent); returns its number."""
        attempt = p.attempts + 1
        row = [f"{p.key}#{attempt}", p.notification_id, p.key, p.channel, channel_type, attempt]
        self._commit([(_BEGIN_OUTBOX, [attempt, now, p.key]), (_BEGIN_ATTEMPT, [*row, now])])
        return attempt

    def finish(
        self,
        p: Pending,
        attempt: int,
        outcome: Outcome,
        now: datetime,
        policy: DeliveryPolicy,
        rng: random.Random,
    ) -> Settled:
        """Record the attempt's outcome and what happens next."""
        next_at: datetime | None = None
        error = outcome.error
        if outcome.delivered:
            state = DeliveryState.DELIVERED
        elif not outcome.retry:
            state = DeliveryState.REJECTED
        else:
            wait = max(backoff_s(attempt, policy, rng), outcome.retry_after_s or 0.0)
            next_at = now + timedelta(seconds=wait)
            state = DeliveryState.QUEUED
            if next_at > p.deadline:
                state, next_at = DeliveryState.GAVE_UP, None
                # The delivery's own age limit (a test message gets the command's --wait).
                age = (p.deadline - p.created).total_seconds()
                error = (
                    f"{error}; gave up after {attempt} attempts: max_delivery_age "
                    f"({age:g} s) reached"
                )
        name = "retry" if state is DeliveryState.QUEUED else state.value
        ms = round(outcome.elapsed_s * 1000, 3)
        self._commit(
            [
                (_SETTLE_OUTBOX, [state.value, next_at, outcome.status, error, now, p.key]),
                (
                    _SETTLE_ATTEMPT,
                    [
                        name,
                        outcome.status,
                        error,
                        ms,
                        next_at,
                        outcome.delivered,
                        f"{p.key}#{attempt}",
                    ],
                ),
            ]
        )
        return Settled(
            p.key, p.channel, p.notification_id, attempt, state, outcome.status, error, next_at
        )

    def recover(self, deduplicating: frozenset[str], now: datetime) -> list[Settled]:
        """At start-up: settle deliveries a dead process left `sending` (see the module doc)."""
        out = []
        for key, notification_id, channel, attempt in self._rows(_SENDING):
            if channel in deduplicating:
                state, error, next_at = DeliveryState.QUEUED, _RECOVER_REQUEUE, now
            else:
                state, error, next_at = DeliveryState.IN_DOUBT, _RECOVER_DOUBT, None
            self._commit(
                [
                    (_SETTLE_OUTBOX, [state.value, next_at, None, error, now, key]),
                    (_DOUBT_ATTEMPT, [error, f"{key}#{attempt}"]),
                ]
            )
            out.append(Settled(key, channel, notification_id, attempt, state, None, error, next_at))
        return out
