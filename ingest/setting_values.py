"""Settings -> values: one `conflictradar.toml` value checked and converted, at load.

Durations, shares of a core, whole numbers, word lists and DuckDB memory sizes, and the check
that a table holds only known keys; for the `[alerts]` table also tables, durations above zero,
whole minutes, positive numbers, enum choices, non-empty strings and environment variable names.
A refusal is a ConfigError naming the key, the value and what is allowed. The section readers
(`ingest.settings`, `ingest.classify_settings`, `ingest.alert_settings`, `ingest.rule_settings`)
are built on these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from conflictradar.ingest.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
MAX_DURATION_S = 366 * 86400.0  # past this, windows and deadlines overflow datetimes
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_share(value: object, key: str) -> float:
    """`"3%"` or `3` (percent of one core) -> 0.03; `0` is none."""
    text = str(value).strip().removesuffix("%").strip()
    try:
        percent = float(text) if not isinstance(value, bool) else math.nan
    except ValueError:
        percent = math.nan
    if not 0 <= percent <= 100:  # NaN fails too
        raise ConfigError(f'{key} = {value!r} is not a share of one core; use e.g. "3%" (0 = none)')
    return percent / 100


def parse_duration(value: object, key: str) -> float:
    """`"5s"`, `"1m"`, `"500ms"`, `"2h"`, `"7d"` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ConfigError(f'{key} = {value!r} is not a duration; use e.g. "30s", "5m", "1h"')
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(
                f'{key} = {value!r} is not a duration; use e.g. "500ms", "30s", "5m", "1h"'
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ConfigError(f'{key} = {value!r} is not a finite duration; use e.g. "30s", "5m", "1h"')
    if seconds < 0:
        raise ConfigError(f"{key} = {value!r} must not be negative")
    if seconds > MAX_DURATION_S:
        raise ConfigError(f"{key} = {value!r} must be at most 366 days")
    return seconds


def expect_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {where}.{key}; allowed keys are {', '.join(sorted(allowed))}"
            )


def parse_int(value: object, key: str, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key} = {value!r} must be a whole number")
    try:
        number = int(value) if len(str(value)) <= 20 else maximum + 1
    except ValueError:
        raise ConfigError(f"{key} = {value!r} must be a whole number") from None
    if number < minimum:
        raise ConfigError(f"{key} = {value!r} must be at least {minimum}")
    if number > maximum:
        raise ConfigError(f"{key} = {str(value)[:24]} must be at most {maximum}")
    return number


def parse_words(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{key} must be a list of non-empty strings, got {value!r}")
    return tuple(v.strip().lower() for v in value)


def parse_memory(raw: object, key: str) -> str:
    """A DuckDB memory limit such as "2GB" or "512MB", from 64MB to 10000GB."""
    value = str(raw)
    match = re.fullmatch(r"(\d{1,9}(?:\.\d{1,6})?)\s*([KMG])i?B", value, re.I)
    if not match:
        raise ConfigError(f'{key} = {value!r} must look like "2GB" or "512MB"')
    mb = float(match.group(1)) * {"K": 1e-3, "M": 1.0, "G": 1e3}[match.group(2).upper()]
    if not 64 <= mb <= 1e7:
        raise ConfigError(f"{key} = {value!r} must be from 64MB to 10000GB")
    return value


# -- the [alerts] table's values --------------------------------------------------------

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def list_allowed(values: object) -> str:
    return ", ".join(sorted(str(v) for v in values))  # type: ignore[attr-defined]


def expect_table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {value!r}")
    return value


def expect_duration(value: object, key: str, *, zero_ok: bool = False) -> float:
    seconds = parse_duration(value, key)
    if seconds == 0 and not zero_ok:
        raise ConfigError(f"{key} = {value!r} must be longer than 0s")
    return seconds


def expect_minutes(value: object, where: str, why: str = "") -> float:
    """A duration in whole minutes: windows are read from the per-minute rollups."""
    seconds = expect_duration(value, where)
    if seconds % 60:
        raise ConfigError(f"{where} = {value!r} must be whole minutes{why}")
    return seconds


def expect_whole(value: object, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} = {value!r} must be a whole number >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key} = {value!r} must be at least {minimum}")
    return value


def expect_number(value: object, key: str, example: str, minimum: float = 0.0) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= minimum
    ):
        raise ConfigError(f"{key} = {value!r} must be a number > {minimum:g} (e.g. {example})")
    return float(value)


def expect_choice(value: object, key: str, enum: type[StrEnum]) -> Any:
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    allowed = list_allowed(m.value for m in enum)
    raise ConfigError(f"{key} = {value!r} is not allowed; allowed values are {allowed}")


def expect_text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} = {value!r} must be a non-empty string")
    return value.strip()


def expect_env_name(value: object, key: str) -> str:
    name = expect_text(value, key)
    if not ENV_NAME.match(name):
        raise ConfigError(f"{key} = {name!r} is not an environment variable name")
    return name
