"""Settings -> alerts: the `[[alerts.rules]]` tables, each one typed, validated Rule.

A rule's scope and detector, its windows, floors and thresholds, and the rules that apply when
none are configured. Read by `ingest.alert_settings` with the rest of the `[alerts]` table;
durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.setting_values import (
    expect_choice,
    expect_duration,
    expect_keys,
    expect_minutes,
    expect_number,
    expect_table,
    expect_text,
    expect_whole,
    list_allowed,
)


class Scope(StrEnum):
    """What a rule judges 409s per: all of them, each endpoint template, or each cause."""

    GLOBAL = "global"
    ENDPOINT = "endpoint"
    CAUSE = "cause"


class DetectorKind(StrEnum):
    BASELINE = "baseline"
    THRESHOLD = "threshold"


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


def parse_rule(index: int, raw: object, channel_names: tuple[str, ...], seen: set[str]) -> Rule:
    where = f"alerts.rules[{index}]"
    table = expect_table(raw, f"[[{where}]]")
    if "name" not in table:
        raise ConfigError(f"{where}.name is missing; every rule needs a name")
    name = expect_text(table["name"], f"{where}.name")
    if name in seen:
        raise ConfigError(f"{where}.name = {name!r} is used by two rules; names must be unique")
    seen.add(name)
    where = f"alerts.rules[{index}] ({name!r})"
    expect_keys(table, RULE_KEYS, where)
    rule = Rule(name=name)
    if "scope" in table:
        rule = replace(rule, scope=expect_choice(table["scope"], f"{where}.scope", Scope))
    if "detector" in table:
        rule = replace(
            rule, detector=expect_choice(table["detector"], f"{where}.detector", DetectorKind)
        )
    if "window" in table:
        why = ' (e.g. "1m", "5m"): past windows are read from the per-minute rollups'
        rule = replace(rule, window_s=expect_minutes(table["window"], f"{where}.window", why))
    if "short_window" in table:
        short = expect_minutes(table["short_window"], f"{where}.short_window")
        rule = replace(rule, short_window_s=short)
    if rule.short_window_s > rule.window_s:
        rule = replace(rule, short_window_s=rule.window_s)
    if "min_count" in table:
        rule = replace(rule, min_count=expect_whole(table["min_count"], f"{where}.min_count", 1))
    if "for" in table:
        rule = replace(rule, for_s=expect_duration(table["for"], f"{where}.for", zero_ok=True))
    if "channels" in table:
        names = table["channels"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.channels = {names!r} must be a list of channel names")
        for n in names:
            if n not in channel_names:
                allowed = list_allowed(channel_names) if channel_names else "none are configured"
                raise ConfigError(
                    f"{where}.channels: no channel named {n!r}; configured channels: {allowed}"
                )
        rule = replace(rule, channels=tuple(dict.fromkeys(names)))
    if "history" in table:
        rule = replace(rule, history=expect_whole(table["history"], f"{where}.history", 1))
    if "min_history" in table:
        rule = replace(
            rule, min_history=expect_whole(table["min_history"], f"{where}.min_history", 1)
        )
    if "history_step" in table:
        step = expect_minutes(table["history_step"], f"{where}.history_step")
        rule = replace(rule, history_step_s=step)
    if "deviation" in table:
        rule = replace(
            rule, deviation=expect_number(table["deviation"], f"{where}.deviation", "3.5")
        )
    if "min_rise" in table:
        rise = table["min_rise"]
        if isinstance(rise, bool) or not isinstance(rise, int | float) or not 0 <= rise < 1:
            raise ConfigError(
                f"{where}.min_rise = {rise!r} must be a 409 rate from 0 to 1 (e.g. 0.01 for one "
                "percentage point)"
            )
        rule = replace(rule, min_rise=float(rise))
    if "ratio" in table:
        rule = replace(rule, ratio=expect_number(table["ratio"], f"{where}.ratio", "2", 1.0))
    for key, attr in (
        ("resolve_after", "resolve_after_s"),
        ("repeat_interval", "repeat_interval_s"),
        ("flap_window", "flap_window_s"),
        ("flap_resolve_after", "flap_resolve_after_s"),
    ):
        if key in table:
            zero_ok = key in ("resolve_after", "flap_resolve_after")
            value = expect_duration(table[key], f"{where}.{key}", zero_ok=zero_ok)
            change: dict[str, Any] = {attr: value}
            rule = replace(rule, **change)
    if "flap_count" in table:
        rule = replace(rule, flap_count=expect_whole(table["flap_count"], f"{where}.flap_count", 2))
    if "severity" in table:
        rule = replace(rule, severity=expect_text(table["severity"], f"{where}.severity"))
    if "top" in table:
        rule = replace(rule, top=expect_whole(table["top"], f"{where}.top", 0))
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
