"""The soak's webhook receiver: the alerts tests' real HTTP receiver on 127.0.0.1
(tests/test_alerts_kit.py), taken down and back up on the same port. While down nothing listens
on the port: senders get "connection refused", as from a crashed host. `snapshot` reads what it
got as the soak counts it: Idempotency-Key, the notification's status, its alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests import test_alerts_kit as kit


@dataclass
class Received:
    at: float
    key: str
    status: str
    alerts: list[tuple[str, str]]  # (fingerprint, status)


def _summary(got: kit.Received) -> Received:
    try:
        payload: dict[str, Any] = got.json()
    except ValueError:
        payload = {}
    alerts = [(a.get("fingerprint", ""), a.get("status", "")) for a in payload.get("alerts", [])]
    key = next((v for k, v in got.headers.items() if k.lower() == "idempotency-key"), "")
    return Received(got.at, key, str(payload.get("status")), alerts)


class Receiver(kit.Receiver):
    def up(self) -> None:
        self.start()  # the same port after the first start: senders see the host come back

    def down(self) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def snapshot(self) -> list[Received]:
        with self._lock:
            got = list(self.requests)
        return [_summary(r) for r in got]
