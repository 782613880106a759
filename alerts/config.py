"""Settings -> alerts: validate the raw `[alerts]` table into channels, rules and delivery policy.

An unknown key, a bad value or an unknown channel is a ConfigError naming the key, the value and
what is allowed. Secrets are read from the environment here, once.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from alerts.channels import Channel, ChannelKind
from alerts.rules import DEFAULT_RULES, DetectorKind, Rule, Scope
from alerts.secrets import Secret
from ingest.errors import ConfigError
from ingest.settings import Settings, parse_duration

DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501"

TOP_KEYS = {
    "channels",
    "rules",
    "default_rules",
    "timeout",
    "retry_initial",
    "retry_max",
    "max_delivery_age",
}
CHANNEL_KEYS = {"type", "url_env", "secret_env", "dedupe", "timeout", "signature_header"}
RULE_KEYS = {
    "name",
    "scope",
    "detector",
    "window",
    "min_count",
    "for",
    "channels",
    "history",
    "history_step",
    "deviation",
    "resolve_after",
    "repeat_interval",
    "flap_window",
    "flap_count",
    "flap_resolve_after",
    "severity",
    "top",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the outbox treats a delivery: per-attempt timeout, backoff bounds, when to give up."""

    timeout_s: float = 10.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 300.0
    max_age_s: float = 3600.0


@dataclass(frozen=True)
class AlertConfig:
    channels: tuple[Channel, ...] = ()
    rules: tuple[Rule, ...] = DEFAULT_RULES
    delivery: DeliveryPolicy = DeliveryPolicy()
    dashboard_url: str = DEFAULT_DASHBOARD_URL

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def channels_of(self, rule: Rule) -> tuple[Channel, ...]:
        if rule.channels is None:
            return self.channels
        return tuple(c for c in self.channels if c.name in rule.channels)


def _allowed(values: object) -> str:
    return ", ".join(sorted(str(v) for v in values))  # type: ignore[attr-defined]


def _expect_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key {where}.{key}; allowed keys are {_allowed(allowed)}")


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {value!r}")
    return value


def _positive_duration(value: object, key: str, *, zero_ok: bool = False) -> float:
    seconds = parse_duration(value, key)
    if seconds == 0 and not zero_ok:
        raise ConfigError(f"{key} = {value!r} must be longer than 0s")
    return seconds


def _whole(value: object, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} = {value!r} must be a whole number >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key} = {value!r} must be at least {minimum}")
    return value


def _choice(
    value: object, key: str, enum: type[Scope] | type[DetectorKind] | type[ChannelKind]
) -> Any:
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    allowed = _allowed(m.value for m in enum)
    raise ConfigError(f"{key} = {value!r} is not allowed; allowed values are {allowed}")


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} = {value!r} must be a non-empty string")
    return value.strip()


def _env_secret(var: str, key: str, env: Mapping[str, str], required: bool) -> Secret | None:
    value = env.get(var, "")
    if not value.strip():
        if required:
            raise ConfigError(f"{key} = {var!r}: the environment variable {var} is not set")
        return None
    return Secret(value.strip())


def _channel(name: str, raw: object, env: Mapping[str, str], required: bool) -> Channel:
    where = f"alerts.channels.{name}"
    table = _table(raw, f"[{where}]")
    _expect_keys(table, CHANNEL_KEYS, where)
    if "type" not in table:
        raise ConfigError(f"{where}.type is missing; allowed values are {_allowed(ChannelKind)}")
    kind: ChannelKind = _choice(table["type"], f"{where}.type", ChannelKind)
    if "url_env" not in table:
        raise ConfigError(
            f"{where}.url_env is missing: name the environment variable that holds "
            f"the {'base ' if kind is ChannelKind.ALERTMANAGER else ''}URL"
        )
    url_env = _text(table["url_env"], f"{where}.url_env")
    if not _ENV_NAME.match(url_env):
        raise ConfigError(f"{where}.url_env = {url_env!r} is not an environment variable name")
    url = _env_secret(url_env, f"{where}.url_env", env, required)
    if url is not None and not re.match(r"^https?://[^/\s]+", url.reveal()):
        raise ConfigError(
            f"{where}.url_env = {url_env!r}: the environment variable {url_env} "
            "does not hold an http:// or https:// URL"
        )
    secret_env = secret = None
    if "secret_env" in table:
        if kind is ChannelKind.SLACK:
            raise ConfigError(
                f"{where}.secret_env is not allowed for a slack channel (the "
                "webhook URL is its secret); it is for webhook and alertmanager"
            )
        secret_env = _text(table["secret_env"], f"{where}.secret_env")
        if not _ENV_NAME.match(secret_env):
            raise ConfigError(
                f"{where}.secret_env = {secret_env!r} is not an environment variable name"
            )
        secret = _env_secret(secret_env, f"{where}.secret_env", env, required)
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
    timeout = None
    if "timeout" in table:
        timeout = _positive_duration(table["timeout"], f"{where}.timeout")
    header = "X-Conflictradar-Signature"
    if "signature_header" in table:
        header = _text(table["signature_header"], f"{where}.signature_header")
        if not _HEADER.match(header) or kind is not ChannelKind.WEBHOOK:
            raise ConfigError(
                f"{where}.signature_header = {header!r} must be an HTTP header "
                "name, on a webhook channel"
            )
    return Channel(name, kind, url_env, url, secret_env, secret, dedupe, timeout, header)


def _rule(index: int, raw: object, channel_names: tuple[str, ...], seen: set[str]) -> Rule:
    where = f"alerts.rules[{index}]"
    table = _table(raw, f"[[{where}]]")
    if "name" not in table:
        raise ConfigError(f"{where}.name is missing; every rule needs a name")
    name = _text(table["name"], f"{where}.name")
    if name in seen:
        raise ConfigError(f"{where}.name = {name!r} is used by two rules; names must be unique")
    seen.add(name)
    where = f"alerts.rules[{index}] ({name!r})"
    _expect_keys(table, RULE_KEYS, where)
    rule = Rule(name=name)
    if "scope" in table:
        rule = replace(rule, scope=_choice(table["scope"], f"{where}.scope", Scope))
    if "detector" in table:
        rule = replace(rule, detector=_choice(table["detector"], f"{where}.detector", DetectorKind))
    if "window" in table:
        rule = replace(rule, window_s=_positive_duration(table["window"], f"{where}.window"))
    if "min_count" in table:
        rule = replace(rule, min_count=_whole(table["min_count"], f"{where}.min_count", 1))
    if "for" in table:
        rule = replace(rule, for_s=_positive_duration(table["for"], f"{where}.for", zero_ok=True))
    if "channels" in table:
        names = table["channels"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.channels = {names!r} must be a list of channel names")
        for n in names:
            if n not in channel_names:
                allowed = _allowed(channel_names) if channel_names else "none are configured"
                raise ConfigError(
                    f"{where}.channels: no channel named {n!r}; configured channels: {allowed}"
                )
        rule = replace(rule, channels=tuple(dict.fromkeys(names)))
    if "history" in table:
        rule = replace(rule, history=_whole(table["history"], f"{where}.history", 1))
    if "history_step" in table:
        step = _positive_duration(table["history_step"], f"{where}.history_step")
        rule = replace(rule, history_step_s=step)
    if "deviation" in table:
        dev = table["deviation"]
        if (
            isinstance(dev, bool)
            or not isinstance(dev, int | float)
            or not math.isfinite(dev)
            or dev <= 0
        ):
            raise ConfigError(f"{where}.deviation = {dev!r} must be a number > 0 (e.g. 3.5)")
        rule = replace(rule, deviation=float(dev))
    for key, attr in (
        ("resolve_after", "resolve_after_s"),
        ("repeat_interval", "repeat_interval_s"),
        ("flap_window", "flap_window_s"),
        ("flap_resolve_after", "flap_resolve_after_s"),
    ):
        if key in table:
            zero_ok = key in ("resolve_after", "flap_resolve_after")
            value = _positive_duration(table[key], f"{where}.{key}", zero_ok=zero_ok)
            change: dict[str, Any] = {attr: value}
            rule = replace(rule, **change)
    if "flap_count" in table:
        rule = replace(rule, flap_count=_whole(table["flap_count"], f"{where}.flap_count", 2))
    if "severity" in table:
        rule = replace(rule, severity=_text(table["severity"], f"{where}.severity"))
    if "top" in table:
        rule = replace(rule, top=_whole(table["top"], f"{where}.top", 0))
    if rule.step_s < rule.window_s and rule.history_step_s is not None:
        raise ConfigError(
            f"{where}.history_step = {table['history_step']!r} must be at least the "
            f"window ({table.get('window', '5m')!r}) so history windows do not "
            "overlap the current one"
        )
    return rule


def _delivery(table: Mapping[str, Any]) -> DeliveryPolicy:
    policy = DeliveryPolicy()
    for key, attr in (
        ("timeout", "timeout_s"),
        ("retry_initial", "retry_initial_s"),
        ("retry_max", "retry_max_s"),
        ("max_delivery_age", "max_age_s"),
    ):
        if key in table:
            change: dict[str, Any] = {attr: _positive_duration(table[key], f"alerts.{key}")}
            policy = replace(policy, **change)
    if policy.retry_max_s < policy.retry_initial_s:
        raise ConfigError(
            f"alerts.retry_max = {table.get('retry_max')!r} must be at least "
            f"alerts.retry_initial = {table.get('retry_initial', '1s')!r}"
        )
    return policy


def parse_alert_config(
    table: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    require_secrets: bool = True,
    dashboard_url: str = "",
) -> AlertConfig:
    """`[alerts]` -> AlertConfig, or a ConfigError naming the key, the value and what is allowed."""
    _expect_keys(table, TOP_KEYS, "alerts")
    raw_channels = _table(table.get("channels", {}), "[alerts.channels]")
    channels = tuple(
        _channel(str(name), raw, env, require_secrets) for name, raw in raw_channels.items()
    )
    names = tuple(c.name for c in channels)
    raw_rules = table.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(
            f"alerts.rules must be an array of tables ([[alerts.rules]]), got {raw_rules!r}"
        )
    seen: set[str] = set()
    rules = tuple(_rule(i, raw, names, seen) for i, raw in enumerate(raw_rules))
    use_defaults = table.get("default_rules", True)
    if not isinstance(use_defaults, bool):
        raise ConfigError(f"alerts.default_rules = {use_defaults!r} must be true or false")
    if not rules and use_defaults:
        rules = DEFAULT_RULES
    return AlertConfig(
        channels, rules, _delivery(table), (dashboard_url or DEFAULT_DASHBOARD_URL).rstrip("/")
    )


def load_alert_config(
    settings: Settings, env: Mapping[str, str] | None = None, *, require_secrets: bool = True
) -> AlertConfig:
    """Validate `settings.alerts_table`; secrets come from `env` (default: the process's)."""
    return parse_alert_config(
        settings.alerts_table,
        os.environ if env is None else env,
        require_secrets=require_secrets,
        dashboard_url=settings.dashboard.public_url,
    )
