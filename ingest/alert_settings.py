"""Settings -> alerts and dashboard: the `[alerts]` table as one typed, validated object.

Parsed with the rest of the settings at load, so a bad rule is an error for every command (not
only when an engine starts), and the dashboard shows the effective rules, defaults included,
without importing the alerts package. Secrets are not here: channels name the environment
variables, and the alerts package reads them when it sends. Durations are seconds.

The rules (`[[alerts.rules]]`) are read in `ingest.rule_settings`; single values are checked in
`ingest.setting_values`. The types and `parse_alert_settings` can be imported from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.rule_settings import (
    DEFAULT_RULES,
    RULE_KEYS,
    DetectorKind,
    Rule,
    Scope,
    parse_rule,
)
from conflictradar.ingest.setting_values import (
    ENV_NAME,
    expect_choice,
    expect_duration,
    expect_env_name,
    expect_keys,
    expect_table,
    expect_text,
    list_allowed,
)

# What can be imported from here, defined here or in the modules above.
__all__ = [
    "CHANNEL_KEYS",
    "DEFAULT_RULES",
    "ENV_NAME",
    "RULE_KEYS",
    "TOP_KEYS",
    "AlertSettings",
    "ChannelKind",
    "ChannelSettings",
    "DeliveryPolicy",
    "DetectorKind",
    "Grouping",
    "Rule",
    "Scope",
    "parse_alert_settings",
]


class ChannelKind(StrEnum):
    SLACK = "slack"
    WEBHOOK = "webhook"
    ALERTMANAGER = "alertmanager"


@dataclass(frozen=True)
class ChannelSettings:
    """One `[alerts.channels.NAME]`: where to send, by the names of the variables that hold it."""

    name: str
    kind: ChannelKind
    url_env: str
    secret_env: str | None = None
    dedupe: bool = False
    timeout_s: float | None = None
    signature_header: str = "X-Conflictradar-Signature"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the outbox treats a delivery: per-attempt timeout, backoff bounds, when to give up."""

    timeout_s: float = 10.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 300.0
    max_age_s: float = 3600.0


@dataclass(frozen=True)
class Grouping:
    """How alerts become messages: alerts that start firing while an incident is open (any rule,
    any scope) join it; it is announced `wait_s` after it opens; one that starts firing
    `interval_s` or more into the incident is announced on its own (after `wait_s`)."""

    wait_s: float = 10.0
    interval_s: float = 300.0


@dataclass(frozen=True)
class AlertSettings:
    channels: tuple[ChannelSettings, ...] = ()
    rules: tuple[Rule, ...] = DEFAULT_RULES
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    grouping: Grouping = field(default_factory=Grouping)
    # Whether `rules` came from the config file (False: the defaults apply).
    configured: bool = False
    default_rules: bool = True  # `[alerts] default_rules`


TOP_KEYS = {
    "channels",
    "rules",
    "default_rules",
    "timeout",
    "retry_initial",
    "retry_max",
    "max_delivery_age",
    "group_wait",
    "group_interval",
}
CHANNEL_KEYS = {"type", "url_env", "secret_env", "dedupe", "timeout", "signature_header"}
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")


def _channel(name: str, raw: object) -> ChannelSettings:
    where = f"alerts.channels.{name}"
    table = expect_table(raw, f"[{where}]")
    expect_keys(table, CHANNEL_KEYS, where)
    if "type" not in table:
        raise ConfigError(
            f"{where}.type is missing; allowed values are {list_allowed(ChannelKind)}"
        )
    kind: ChannelKind = expect_choice(table["type"], f"{where}.type", ChannelKind)
    if "url_env" not in table:
        raise ConfigError(
            f"{where}.url_env is missing: name the environment variable that holds "
            f"the {'base ' if kind is ChannelKind.ALERTMANAGER else ''}URL"
        )
    channel = ChannelSettings(name, kind, expect_env_name(table["url_env"], f"{where}.url_env"))
    if "secret_env" in table:
        if kind is ChannelKind.SLACK:
            raise ConfigError(
                f"{where}.secret_env is not allowed for a slack channel (the "
                "webhook URL is its secret); it is for webhook and alertmanager"
            )
        channel = replace(
            channel, secret_env=expect_env_name(table["secret_env"], f"{where}.secret_env")
        )
    dedupe = kind is ChannelKind.ALERTMANAGER
    if "dedupe" in table:
        if not isinstance(table["dedupe"], bool):
            raise ConfigError(f"{where}.dedupe = {table['dedupe']!r} must be true or false")
        if table["dedupe"] and kind is ChannelKind.SLACK:
            raise ConfigError(
                f"{where}.dedupe = true is not allowed: Slack incoming webhooks "
                "do not deduplicate requests"
            )
        dedupe = table["dedupe"] or kind is ChannelKind.ALERTMANAGER
    channel = replace(channel, dedupe=dedupe)
    if "timeout" in table:
        channel = replace(channel, timeout_s=expect_duration(table["timeout"], f"{where}.timeout"))
    if "signature_header" in table:
        header = expect_text(table["signature_header"], f"{where}.signature_header")
        if not _HEADER.match(header) or kind is not ChannelKind.WEBHOOK:
            raise ConfigError(
                f"{where}.signature_header = {header!r} must be an HTTP header "
                "name, on a webhook channel"
            )
        channel = replace(channel, signature_header=header)
    return channel


def _delivery(table: Mapping[str, Any]) -> DeliveryPolicy:
    policy = DeliveryPolicy()
    for key, attr in (
        ("timeout", "timeout_s"),
        ("retry_initial", "retry_initial_s"),
        ("retry_max", "retry_max_s"),
        ("max_delivery_age", "max_age_s"),
    ):
        if key in table:
            change: dict[str, Any] = {attr: expect_duration(table[key], f"alerts.{key}")}
            policy = replace(policy, **change)
    if policy.retry_max_s < policy.retry_initial_s:
        raise ConfigError(
            f"alerts.retry_max = {table.get('retry_max')!r} must be at least "
            f"alerts.retry_initial = {table.get('retry_initial', '1s')!r}"
        )
    return policy


def _grouping(table: Mapping[str, Any]) -> Grouping:
    out = Grouping()
    if "group_wait" in table:
        out = replace(
            out, wait_s=expect_duration(table["group_wait"], "alerts.group_wait", zero_ok=True)
        )
    if "group_interval" in table:
        interval = expect_duration(table["group_interval"], "alerts.group_interval")
        out = replace(out, interval_s=interval)
    return out


def parse_alert_settings(table: Mapping[str, Any]) -> AlertSettings:
    """`[alerts]` -> AlertSettings, or a ConfigError naming the key, the value and what is allowed."""
    table = expect_table(table, "[alerts]")
    expect_keys(table, TOP_KEYS, "alerts")
    raw_channels = expect_table(table.get("channels", {}), "[alerts.channels]")
    channels = tuple(_channel(str(name), raw) for name, raw in raw_channels.items())
    names = tuple(c.name for c in channels)
    raw_rules = table.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(
            f"alerts.rules must be an array of tables ([[alerts.rules]]), got {raw_rules!r}"
        )
    seen: set[str] = set()
    rules = tuple(parse_rule(i, raw, names, seen) for i, raw in enumerate(raw_rules))
    use_defaults = table.get("default_rules", True)
    if not isinstance(use_defaults, bool):
        raise ConfigError(f"alerts.default_rules = {use_defaults!r} must be true or false")
    configured = bool(rules) or not use_defaults
    if not rules and use_defaults:
        rules = DEFAULT_RULES
    return AlertSettings(
        channels, rules, _delivery(table), _grouping(table), configured, use_defaults
    )
