"""Settings -> notifiers: where notifications go (`[alerts.channels.NAME]`).

Channel URLs and keys are `Secret`s read from the environment variables the settings name; the
names of those variables are not secret and appear in messages, the values never do.
"""

from __future__ import annotations

from dataclasses import dataclass

from conflictradar.alerts.secrets import Secret
from conflictradar.ingest.alert_settings import ChannelKind

__all__ = ["Channel", "ChannelKind"]


@dataclass(frozen=True)
class Channel:
    """One configured channel. `url` is None only when secrets were not required (backtest)."""

    name: str
    kind: ChannelKind
    url_env: str
    url: Secret | None
    secret_env: str | None = None
    # webhook: HMAC-SHA256 key for the signature header; alertmanager: bearer token.
    secret: Secret | None = None
    # Whether the receiver drops a repeated Idempotency-Key (or, for Alertmanager, merges the
    # same alert): then a delivery whose outcome a crash left unknown is sent again.
    dedupe: bool = False
    timeout_s: float | None = None
    signature_header: str = "X-Conflictradar-Signature"

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.url, self.secret) if s is not None)
