"""Settings -> alerts and dashboard: the `[alerts]` table as one typed, validated object.

Parsed with the rest of the settings at load, so a bad rule is an error for every command (not
only when an engine starts), and the dashboard shows the effective rules, defaults included,
without importing the alerts package. Secrets are not here: channels name the environment
variables, and the alerts package reads them when it sends. Durations are seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.setting_values import parse_duration


class Scope(StrEnum):
    """What a rule judges 409s per: all of them, each endpoint template, or each cause."""

    GLOBAL = "global"
    ENDPOINT = "endpoint"
    CAUSE = "cause"


class DetectorKind(StrEnum):
    BASELINE = "baseline"
    THRESHOLD = "threshold"


class ChannelKind(StrEnum):
    SLACK = "slack"
    WEBHOOK = "webhook"
    ALERTMANAGER = "alertmanager"


@dataclass(frozen=True)
class Rule:
    """One `[[alerts.rules]]` entry, every key resolved."""

    name: str
    scope: Scope = Scope.GLOBAL
    detector: DetectorKind = DetectorKind.BASELINE
    # Two sliding windows (now - w, now], whole minutes (history comes from minute rollups), as
    # in SRE multi-window alerting: the short one catches a sharp spike at once, the long one a
    # slower or low-traffic one, confirmed by the short one (so it resets as soon as it ends).
    window_s: float = 300.0
    short_window_s: float = 60.0
    # The floor below which nothing fires, whatever the rate says: on a quiet endpoint a jump
    # from 1 to 3 is a huge relative change and means nothing.
    min_count: int = 10
    for_s: float = 10.0
    # None: every configured channel. An empty tuple: record events, notify nobody.
    channels: tuple[str, ...] | None = None
    # Baseline: the 409 rate of the same window at `history_step_s` (default: one window) steps
    # back, this many times; "1d" compares with the same time on previous days.
    history: int = 30
    history_step_s: float | None = None
    # Fewer past windows since the data began: too little history; the rule stays silent.
    min_history: int = 10
    # How many robust deviations above the baseline rate the window's rate must stand.
    deviation: float = 4.5
    # ...and how many times the baseline rate it must be (a burn-rate style factor)...
    ratio: float = 2.0
    # ...and how far above it, in absolute terms (0.01: one percentage point).
    min_rise: float = 0.01
    # Stay firing until the condition has been false this long (damps resolve/fire churn).
    resolve_after_s: float = 15.0
    repeat_interval_s: float = 4 * 3600.0
    # Flap damping: `flap_count` starts within `flap_window_s` make the alert flapping; a flapping
    # alert resolves only after `flap_resolve_after_s` of quiet.
    flap_window_s: float = 3600.0
    flap_count: int = 4
    flap_resolve_after_s: float = 900.0
    severity: str = "warning"
    # How many causes / resources / endpoints a message lists.
    top: int = 3

    @property
    def step_s(self) -> float:
        return self.history_step_s if self.history_step_s is not None else self.window_s


# When no rules are configured: one rule over all 409s and one per endpoint, both judging the
# 409 rate against its own recent history, with a floor of 409s so a quiet service's occasional
# 409 never pages anyone. The README says why each number is what it is.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="409 spike", scope=Scope.GLOBAL, min_count=20),
    Rule(name="409 spike per endpoint", scope=Scope.ENDPOINT, min_count=10, ratio=2.5),
)


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
RULE_KEYS = {
    "name",
    "scope",
    "detector",
    "window",
    "short_window",
    "min_count",
    "for",
    "channels",
    "history",
    "history_step",
    "min_history",
    "deviation",
    "ratio",
    "min_rise",
    "resolve_after",
    "repeat_interval",
    "flap_window",
    "flap_count",
    "flap_resolve_after",
    "severity",
    "top",
}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")


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


def _duration(value: object, key: str, *, zero_ok: bool = False) -> float:
    seconds = parse_duration(value, key)
    if seconds == 0 and not zero_ok:
        raise ConfigError(f"{key} = {value!r} must be longer than 0s")
    return seconds


def _minutes(value: object, where: str, why: str = "") -> float:
    """A duration in whole minutes: windows are read from the per-minute rollups."""
    seconds = _duration(value, where)
    if seconds % 60:
        raise ConfigError(f"{where} = {value!r} must be whole minutes{why}")
    return seconds


def _whole(value: object, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} = {value!r} must be a whole number >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key} = {value!r} must be at least {minimum}")
    return value


def _number(value: object, key: str, example: str, minimum: float = 0.0) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= minimum
    ):
        raise ConfigError(f"{key} = {value!r} must be a number > {minimum:g} (e.g. {example})")
    return float(value)


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


def _env_name(value: object, key: str) -> str:
    name = _text(value, key)
    if not ENV_NAME.match(name):
        raise ConfigError(f"{key} = {name!r} is not an environment variable name")
    return name


def _channel(name: str, raw: object) -> ChannelSettings:
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
    channel = ChannelSettings(name, kind, _env_name(table["url_env"], f"{where}.url_env"))
    if "secret_env" in table:
        if kind is ChannelKind.SLACK:
            raise ConfigError(
                f"{where}.secret_env is not allowed for a slack channel (the "
                "webhook URL is its secret); it is for webhook and alertmanager"
            )
        channel = replace(channel, secret_env=_env_name(table["secret_env"], f"{where}.secret_env"))
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
        channel = replace(channel, timeout_s=_duration(table["timeout"], f"{where}.timeout"))
    if "signature_header" in table:
        header = _text(table["signature_header"], f"{where}.signature_header")
        if not _HEADER.match(header) or kind is not ChannelKind.WEBHOOK:
            raise ConfigError(
                f"{where}.signature_header = {header!r} must be an HTTP header "
                "name, on a webhook channel"
            )
        channel = replace(channel, signature_header=header)
    return channel


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
        why = ' (e.g. "1m", "5m"): past windows are read from the per-minute rollups'
        rule = replace(rule, window_s=_minutes(table["window"], f"{where}.window", why))
    if "short_window" in table:
        short = _minutes(table["short_window"], f"{where}.short_window")
        rule = replace(rule, short_window_s=short)
    if rule.short_window_s > rule.window_s:
        rule = replace(rule, short_window_s=rule.window_s)
    if "min_count" in table:
        rule = replace(rule, min_count=_whole(table["min_count"], f"{where}.min_count", 1))
    if "for" in table:
        rule = replace(rule, for_s=_duration(table["for"], f"{where}.for", zero_ok=True))
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
    if "min_history" in table:
        rule = replace(rule, min_history=_whole(table["min_history"], f"{where}.min_history", 1))
    if "history_step" in table:
        step = _minutes(table["history_step"], f"{where}.history_step")
        rule = replace(rule, history_step_s=step)
    if "deviation" in table:
        rule = replace(rule, deviation=_number(table["deviation"], f"{where}.deviation", "3.5"))
    if "min_rise" in table:
        rise = table["min_rise"]
        if isinstance(rise, bool) or not isinstance(rise, int | float) or not 0 <= rise < 1:
            raise ConfigError(
                f"{where}.min_rise = {rise!r} must be a 409 rate from 0 to 1 (e.g. 0.01 for one "
                "percentage point)"
            )
        rule = replace(rule, min_rise=float(rise))
    if "ratio" in table:
        rule = replace(rule, ratio=_number(table["ratio"], f"{where}.ratio", "2", 1.0))
    for key, attr in (
        ("resolve_after", "resolve_after_s"),
        ("repeat_interval", "repeat_interval_s"),
        ("flap_window", "flap_window_s"),
        ("flap_resolve_after", "flap_resolve_after_s"),
    ):
        if key in table:
            zero_ok = key in ("resolve_after", "flap_resolve_after")
            value = _duration(table[key], f"{where}.{key}", zero_ok=zero_ok)
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
    if rule.min_history > rule.history:
        raise ConfigError(
            f"{where}.min_history = {rule.min_history} must be at most history = {rule.history}"
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
            change: dict[str, Any] = {attr: _duration(table[key], f"alerts.{key}")}
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
        out = replace(out, wait_s=_duration(table["group_wait"], "alerts.group_wait", zero_ok=True))
    if "group_interval" in table:
        interval = _duration(table["group_interval"], "alerts.group_interval")
        out = replace(out, interval_s=interval)
    return out


def parse_alert_settings(table: Mapping[str, Any]) -> AlertSettings:
    """`[alerts]` -> AlertSettings, or a ConfigError naming the key, the value and what is allowed."""
    table = _table(table, "[alerts]")
    _expect_keys(table, TOP_KEYS, "alerts")
    raw_channels = _table(table.get("channels", {}), "[alerts.channels]")
    channels = tuple(_channel(str(name), raw) for name, raw in raw_channels.items())
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
    configured = bool(rules) or not use_defaults
    if not rules and use_defaults:
        rules = DEFAULT_RULES
    return AlertSettings(
        channels, rules, _delivery(table), _grouping(table), configured, use_defaults
    )
