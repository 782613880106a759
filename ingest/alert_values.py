"""Settings -> values: one value of the `[alerts]` table checked and converted, at load.

Tables, durations (above zero unless allowed), whole minutes, whole numbers, positive numbers,
enum choices, non-empty strings and environment variable names. A refusal is a ConfigError naming
the key, the value and what is allowed. The `[alerts]` readers (`ingest.alert_settings`,
`ingest.rule_settings`) are built on these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.setting_values import parse_duration

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
