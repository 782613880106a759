"""`conflictradar config check [FILE]`: validate a settings file, print the effective settings.

The output is TOML (defaults < file < CONFLICTRADAR_* environment), itself a valid config file;
secrets never appear: a channel shows the name of its environment variable and whether it is
set. A broken file is one sentence from the loaders' ConfigError, exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Set
from pathlib import Path
from typing import Any, TextIO, TypeVar

from conflictradar.alerts.channels import ChannelKind
from conflictradar.alerts.config import AlertConfig, load_alert_config
from conflictradar.alerts.rules import DEFAULT_RULES
from conflictradar.ingest.settings import Settings, load_settings
from conflictradar.keys import ALERT_KEYS, CHANNEL_KEYS, RULE_KEYS, SETTINGS_KEYS, Key

T = TypeVar("T")
_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def duration_text(seconds: float) -> str:
    """Seconds as the shortest exact duration string: 300 -> "5m", 1.5 -> "1500ms"."""
    if seconds == 0:
        return "0s"
    for unit, size in _UNITS:
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms" if (seconds * 1000).is_integer() else f"{seconds:g}s"


def toml_value(value: Any, kind: str) -> str:
    """One value in TOML syntax (strings JSON-quoted, which TOML accepts)."""
    if kind == "duration" and isinstance(value, int | float):
        return json.dumps(duration_text(float(value)))
    if kind == "share" and isinstance(value, int | float):
        return json.dumps(f"{100 * value:g}%")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v, "") for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ "
            + ", ".join(f"{json.dumps(k)} = {toml_value(v, '')}" for k, v in value.items())
            + " }"
        )
    return json.dumps(str(value), ensure_ascii=False)


def _lines(keys: Iterable[Key[T]], obj: T, skip: Set[str] = frozenset()) -> list[str]:
    out = []
    for key in keys:
        if key.value is None or key.name in skip:
            continue
        value = key.value(obj)
        if value is None or value == "":
            out.append(f"# {key.name} = (not set)")
        else:
            out.append(f"{_bare(key.name)} = {toml_value(value, key.kind)}")
    return out


def _bare(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def effective_toml(settings: Settings, alerts: AlertConfig, env: Mapping[str, str]) -> str:
    """The effective settings as a TOML document, secrets masked."""
    out: list[str] = []
    section = ""
    for key in SETTINGS_KEYS:
        if key.value is None:
            continue  # per-entry keys ([formats.NAME]): no single effective value
        if key.table != section:
            section = key.table
            out.append(f"\n[{section}]")
        out.extend(_lines([key], settings))
    out.append("\n[alerts]")
    default_rules = settings.alerts.default_rules
    out.append(f"default_rules = {toml_value(default_rules, 'boolean')}")
    out.extend(_lines(ALERT_KEYS, alerts, skip={"channels", "rules", "default_rules"}))
    for channel in alerts.channels:
        out.append(f"\n[alerts.channels.{_bare(channel.name)}]")
        skip = set() if channel.kind is ChannelKind.WEBHOOK else {"signature_header"}
        for line in _lines(CHANNEL_KEYS, channel, skip):
            out.append(line + _secret_note(line, channel.url_env, channel.secret_env, env))
    for rule in alerts.rules:
        note = (
            "  # a default rule (no [[alerts.rules]] configured)" if rule in DEFAULT_RULES else ""
        )
        out.append(f"\n[[alerts.rules]]{note}")
        out.extend(_lines(RULE_KEYS, rule))
    for mapping in settings.formats:
        out.append(f"\n[formats.{_bare(mapping.name)}]")
        out.extend(f"{column} = {json.dumps(path)}" for column, path in mapping.paths)
        out.append(f"ts_format = {json.dumps(mapping.ts_format)}")
        out.append(f"duration_unit = {json.dumps(mapping.duration_unit)}")
    return "\n".join(out).lstrip("\n") + "\n"


def _secret_note(line: str, url_env: str, secret_env: str | None, env: Mapping[str, str]) -> str:
    for var in (url_env, secret_env):
        if var and line.startswith(("url_env =", "secret_env =")) and json.dumps(var) in line:
            return "  # set: <secret>" if env.get(var, "").strip() else "  # NOT SET here"
    return ""


def unset_secrets(alerts: AlertConfig, env: Mapping[str, str]) -> list[str]:
    names = []
    for c in alerts.channels:
        for var in (c.url_env, c.secret_env):
            if var and not env.get(var, "").strip():
                names.append(f"{var} (alerts.channels.{c.name})")
    return names


def check_config(file: str | Path | None, db: str | Path | None, out: TextIO) -> int:
    """Validate `file` (default: the usual resolution) and print the effective settings."""
    env = os.environ
    settings = load_settings(config=file, db=db)
    alerts = load_alert_config(settings, env, require_secrets=False)
    source = str(settings.config_path) if settings.config_path else "no config file: defaults"
    out.write(f"# conflictradar config check: {source}\n# database: {settings.db}\n")
    out.write(effective_toml(settings, alerts, env))
    if settings.config_path:
        print(f"conflictradar: {settings.config_path} is valid", file=sys.stderr)
    missing = unset_secrets(alerts, env)
    if missing:
        print(
            "conflictradar: note: not set in this environment (needed where alerts are sent): "
            + ", ".join(missing),
            file=sys.stderr,
        )
    return 0
