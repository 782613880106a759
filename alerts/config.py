"""Settings -> alerts: the typed `[alerts]` settings plus the secrets their channels name.

The settings are validated at load (`ingest.alert_settings`); what is left here is reading each
channel's URL and key from the environment, once, into `Secret`s. A missing or malformed variable
is a ConfigError naming the key and the variable, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conflictradar.alerts.channels import Channel, ChannelKind
from conflictradar.alerts.rules import DEFAULT_RULES, Rule
from conflictradar.alerts.secrets import Secret
from conflictradar.ingest.alert_settings import (
    AlertSettings,
    ChannelSettings,
    DeliveryPolicy,
    Grouping,
    parse_alert_settings,
)
from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.settings import Settings

DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501"

__all__ = ["AlertConfig", "DeliveryPolicy", "load_alert_config", "parse_alert_config"]


@dataclass(frozen=True)
class AlertConfig:
    channels: tuple[Channel, ...] = ()
    rules: tuple[Rule, ...] = DEFAULT_RULES
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    dashboard_url: str = DEFAULT_DASHBOARD_URL
    grouping: Grouping = field(default_factory=Grouping)

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def channels_of(self, rule: Rule) -> tuple[Channel, ...]:
        if rule.channels is None:
            return self.channels
        return tuple(c for c in self.channels if c.name in rule.channels)


def _env_secret(var: str, key: str, env: Mapping[str, str], required: bool) -> Secret | None:
    value = env.get(var, "")
    if not value.strip():
        if required:
            raise ConfigError(f"{key} = {var!r}: the environment variable {var} is not set")
        return None
    return Secret(value.strip())


def _channel(spec: ChannelSettings, env: Mapping[str, str], required: bool) -> Channel:
    where = f"alerts.channels.{spec.name}"
    url = _env_secret(spec.url_env, f"{where}.url_env", env, required)
    if url is not None and not re.match(r"^https?://[^/\s]+", url.reveal()):
        raise ConfigError(
            f"{where}.url_env = {spec.url_env!r}: the environment variable {spec.url_env} "
            "does not hold an http:// or https:// URL"
        )
    secret = None
    if spec.secret_env is not None:
        secret = _env_secret(spec.secret_env, f"{where}.secret_env", env, required)
    return Channel(
        spec.name,
        ChannelKind(spec.kind),
        spec.url_env,
        url,
        spec.secret_env,
        secret,
        spec.dedupe,
        spec.timeout_s,
        spec.signature_header,
    )


def resolve_alert_config(
    alerts: AlertSettings,
    env: Mapping[str, str],
    *,
    require_secrets: bool = True,
    dashboard_url: str = "",
) -> AlertConfig:
    """Typed settings + the environment -> what the engine runs with."""
    channels = tuple(_channel(c, env, require_secrets) for c in alerts.channels)
    return AlertConfig(
        channels,
        alerts.rules,
        alerts.delivery,
        (dashboard_url or DEFAULT_DASHBOARD_URL).rstrip("/"),
        alerts.grouping,
    )


def parse_alert_config(
    table: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    require_secrets: bool = True,
    dashboard_url: str = "",
) -> AlertConfig:
    """`[alerts]` -> AlertConfig, or a ConfigError naming the key, the value and what is allowed."""
    return resolve_alert_config(
        parse_alert_settings(table),
        env,
        require_secrets=require_secrets,
        dashboard_url=dashboard_url,
    )


def load_alert_config(
    settings: Settings, env: Mapping[str, str] | None = None, *, require_secrets: bool = True
) -> AlertConfig:
    """`settings.alerts` with its secrets from `env` (default: the process's)."""
    return resolve_alert_config(
        settings.alerts,
        os.environ if env is None else env,
        require_secrets=require_secrets,
        dashboard_url=settings.dashboard.public_url,
    )
