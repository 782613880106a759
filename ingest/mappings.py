"""JSON field mappings from `[formats.NAME]` tables of conflictradar.toml, validated at settings load.

A mapping says where each canonical column of a custom JSON log lives, as a dotted key path
(`ts = "ts"`, `method = "req.method"`, `status = "res.statusCode"`, `message = "err.message"`),
plus how its time and duration are encoded. `--format NAME` then reads such a log with the parser
of `ingest.formats.jsonmapping`. This module stays free of polars: settings load before any data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conflictradar.ingest.errors import ConfigError

# The canonical columns a mapping may point at (SPEC section 3, plus `route`), in SPEC order.
COLUMNS = (
    "ts", "host", "client_ip", "user_agent", "method", "path", "query", "route", "status",
    "upstream_status", "bytes", "duration_ms", "request_id", "message",
)  # fmt: skip
TIME_ENCODINGS = ("auto", "iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "clf")
DURATION_UNITS = ("ms", "s", "us", "ns")
_OPTIONS = ("ts_format", "duration_unit")
_PATH = re.compile(r"^[^\s./][^\s]*$")
_NAME = re.compile(r"^[A-Za-z][\w-]*$")


@dataclass(frozen=True)
class FieldMapping:
    """One `[formats.NAME]` table: key path per column, time encoding, duration unit."""

    name: str
    paths: tuple[tuple[str, str], ...]  # (column, dotted key path)
    ts_format: str = "auto"  # one of TIME_ENCODINGS, or a strftime pattern (contains `%`)
    duration_unit: str = "ms"

    def path(self, column: str) -> str | None:
        return dict(self.paths).get(column)


def load_mappings(table: Mapping[str, Any], reserved: frozenset[str] = frozenset()) -> tuple[
    FieldMapping, ...
]:  # fmt: skip
    """Validate the `[formats]` table: one sub-table per mapping; errors name the key."""
    out = []
    for name, body in table.items():
        where = f"formats.{name}"
        if not _NAME.match(name):
            raise ConfigError(
                f"[{where}]: a format name must start with a letter and hold only letters, "
                "digits, _ and -"
            )
        if name in reserved:
            raise ConfigError(
                f"[{where}]: {name} is a built-in format; give the mapping another name"
            )
        if not isinstance(body, Mapping):
            raise ConfigError(f'{where} must be a table of column = "key.path"')
        out.append(_mapping(name, body, where))
    return tuple(out)


def _mapping(name: str, body: Mapping[str, Any], where: str) -> FieldMapping:
    allowed = set(COLUMNS) | set(_OPTIONS)
    paths: list[tuple[str, str]] = []
    for key, value in body.items():
        if key not in allowed:
            raise ConfigError(
                f"unknown key {where}.{key}; allowed keys are {', '.join(COLUMNS)}, "
                f"{', '.join(_OPTIONS)}"
            )
        if key in _OPTIONS:
            continue
        if not isinstance(value, str) or not _PATH.match(value) or ".." in value:
            raise ConfigError(
                f"{where}.{key} = {value!r} is not a key path; write the JSON keys joined by dots,"
                ' e.g. "res.statusCode"'
            )
        paths.append((key, value))
    for required, why in (("ts", "placed in time"), ("status", "read as requests")):
        if required not in body:
            raise ConfigError(
                f'{where} has no {required} = "<key path>", so its lines cannot be {why}'
            )
    ts_format = body.get("ts_format", "auto")
    if not isinstance(ts_format, str) or (ts_format not in TIME_ENCODINGS and "%" not in ts_format):
        raise ConfigError(
            f"{where}.ts_format = {ts_format!r} is not one of {', '.join(TIME_ENCODINGS)} or a "
            'strftime pattern such as "%Y-%m-%d %H:%M:%S%z"'
        )
    unit = body.get("duration_unit", "ms")
    if unit not in DURATION_UNITS:
        raise ConfigError(
            f"{where}.duration_unit = {unit!r} is not one of {', '.join(DURATION_UNITS)}"
        )
    return FieldMapping(name, tuple(paths), ts_format, unit)
