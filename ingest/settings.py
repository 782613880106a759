"""The one settings object: defaults < conflictradar.toml < CONFLICTRADAR_* environment < flags.

Resolved once by the CLI and passed down explicitly. Validated whole at load: an unknown key or a
bad value is a ConfigError naming the key, the value and what is allowed.

The `[classify]` table is read in `ingest.classify_settings` and the `[alerts]` table in
`ingest.alert_settings`; single values are checked in `ingest.setting_values`. The settings
types and `load_settings` can be imported from here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conflictradar.ingest.alert_settings import AlertSettings, parse_alert_settings
from conflictradar.ingest.classify_settings import (
    ACTION_VERBS,
    KEYWORDS,
    ClassifySettings,
    parse_classify,
)
from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.mappings import FieldMapping, load_mappings
from conflictradar.ingest.setting_values import (
    MAX_DURATION_S,
    expect_keys,
    parse_duration,
    parse_int,
    parse_memory,
    parse_share,
)

# What can be imported from here, defined here or in the modules above.
__all__ = [
    "ACTION_VERBS",
    "DEFAULT_CONFIG",
    "DEFAULT_DB",
    "KEYWORDS",
    "MAX_BATCH_WAIT_S",
    "MAX_BLOCK_MB",
    "MAX_DURATION_S",
    "ClassifySettings",
    "ConfigError",
    "DashboardSettings",
    "EndpointSettings",
    "IngestSettings",
    "Settings",
    "SqlSettings",
    "WatchSettings",
    "load_settings",
    "parse_duration",
]

DEFAULT_DB = "conflictradar.duckdb"
DEFAULT_CONFIG = "conflictradar.toml"
MAX_BLOCK_MB = 1024  # a read block is held in memory two or three times over while parsed


@dataclass(frozen=True)
class EndpointSettings:
    openapi: Path | None = None
    # A path position under one prefix with at least this many distinct values is folded to {id}.
    fold_threshold: int = 200


@dataclass(frozen=True)
class SqlSettings:
    timeout_s: float = 10.0
    max_rows: int = 10_000
    memory_limit: str = "2GB"


@dataclass(frozen=True)
class IngestSettings:
    block_bytes: int = 32 << 20
    # Lines longer than this are cut (the cut line is rejected, never silently lost).
    max_line_bytes: int = 16 << 20
    # The zone of timestamps written without an offset (HAProxy's accept date without a syslog
    # offset, ISO times without `Z`/`+hh:mm`, IIS local-time fields); an IANA name.
    timezone: str = "UTC"


@dataclass(frozen=True)
class DashboardSettings:
    host: str = "127.0.0.1"
    port: int = 8501
    public_url: str = ""


MAX_BATCH_WAIT_S = 60.0  # lines kept from alerts longer than this would hide a spike


@dataclass(frozen=True)
class WatchSettings:
    poll_interval_s: float = 1.0
    retention_days: float = 0.0  # 0 keeps everything
    # DuckDB threads of the watcher's connection: its batches and the reads it serves. One
    # thread costs least for the small batches of live traffic (a second thread is woken for
    # every statement: measured 15.3% against 18.5% of a core at 100 lines/s).
    threads: int = 1
    # DuckDB memory of the watcher: its batches and the reads it serves. DuckDB keeps every
    # block it wrote cached until it nears its limit, so under the 2GB of a user query the
    # watcher grew ~30 MB per million rows ingested; under 128MB the cache stays ~30 MB
    # (measured). Heavier served queries spill to the watcher's private temporary folder.
    memory_limit: str = "128MB"
    # A share of one core the watcher's looks keep to, by spacing them (up to 5 s apart: lines
    # then wait longer to be seen); 0: a look every 0.8 s, whatever it costs.
    cpu_budget: float = 0.0
    # How long small appends may wait to be read in one batch when nobody is reading
    # (ingest.batching: up to 1 MiB a file); 0: every look reads what arrived.
    batch_wait_s: float = 5.0


@dataclass(frozen=True)
class Settings:
    db: Path = Path(DEFAULT_DB)
    config_path: Path | None = None
    ingest: IngestSettings = field(default_factory=IngestSettings)
    classify: ClassifySettings = field(default_factory=ClassifySettings)
    endpoints: EndpointSettings = field(default_factory=EndpointSettings)
    sql: SqlSettings = field(default_factory=SqlSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    # The [alerts] table, validated here with everything else (secrets stay in the environment).
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # `[formats.NAME]` JSON field mappings, usable as `--format NAME`.
    formats: tuple[FieldMapping, ...] = ()


_SECTIONS = {"ingest", "classify", "endpoints", "sql", "dashboard", "watch", "alerts", "formats"}


def _endpoints(table: Mapping[str, Any], base: Path) -> EndpointSettings:
    expect_keys(table, {"openapi", "fold_threshold"}, "endpoints")
    out = EndpointSettings()
    if "openapi" in table:
        spec = Path(str(table["openapi"]))
        spec = spec if spec.is_absolute() else base / spec
        if not spec.is_file():
            raise ConfigError(f"endpoints.openapi = {str(table['openapi'])!r}: no such file {spec}")
        out = replace(out, openapi=spec)
    if "fold_threshold" in table:
        out = replace(out, fold_threshold=parse_int(table["fold_threshold"],
                                                    "endpoints.fold_threshold", 2))  # fmt: skip
    return out


def _sql(table: Mapping[str, Any]) -> SqlSettings:
    expect_keys(table, {"timeout", "max_rows", "memory_limit"}, "sql")
    out = SqlSettings()
    if "timeout" in table:
        out = replace(out, timeout_s=parse_duration(table["timeout"], "sql.timeout"))
    if "max_rows" in table:
        out = replace(out, max_rows=parse_int(table["max_rows"], "sql.max_rows", 1, 10_000_000))
    if "memory_limit" in table:
        out = replace(out, memory_limit=parse_memory(table["memory_limit"], "sql.memory_limit"))
    return out


def _ingest(table: Mapping[str, Any]) -> IngestSettings:
    expect_keys(table, {"block_mb", "max_line_mb", "timezone"}, "ingest")
    out = IngestSettings()
    if "timezone" in table:
        from conflictradar.ingest.timestamps import (
            check_zone,  # polars: loaded only when a zone is set
        )

        zone = str(table["timezone"])
        if not check_zone(zone):
            raise ConfigError(
                f"ingest.timezone = {zone!r} is not a time zone; use an IANA name such as"
                " 'Europe/Berlin' or 'UTC'"
            )
        out = replace(out, timezone=zone)
    if "block_mb" in table:
        block_mb = parse_int(table["block_mb"], "ingest.block_mb", 1, MAX_BLOCK_MB)
        out = replace(out, block_bytes=block_mb << 20)
    if "max_line_mb" in table:
        line_mb = parse_int(table["max_line_mb"], "ingest.max_line_mb", 1, MAX_BLOCK_MB)
        out = replace(out, max_line_bytes=line_mb << 20)
    return out


def _dashboard(table: Mapping[str, Any]) -> DashboardSettings:
    expect_keys(table, {"host", "port", "public_url"}, "dashboard")
    out = DashboardSettings()
    if "host" in table:
        out = replace(out, host=str(table["host"]))
    if "port" in table:
        port = parse_int(table["port"], "dashboard.port", 1)
        if port > 65535:
            raise ConfigError(f"dashboard.port = {port} must be at most 65535")
        out = replace(out, port=port)
    if "public_url" in table:
        out = replace(out, public_url=str(table["public_url"]).rstrip("/"))
    return out


def _watch(table: Mapping[str, Any]) -> WatchSettings:
    keys = {"poll_interval", "retention_days", "threads", "memory_limit", "cpu_budget",
            "batch_wait"}  # fmt: skip
    expect_keys(table, keys, "watch")
    out = WatchSettings()
    if "batch_wait" in table:
        wait = parse_duration(table["batch_wait"], "watch.batch_wait")
        if wait > MAX_BATCH_WAIT_S:
            raise ConfigError(f"watch.batch_wait = {table['batch_wait']!r} is longer than"
                              f" {MAX_BATCH_WAIT_S:g} s; use e.g. \"5s\", or 0 to read every"
                              " look")  # fmt: skip
        out = replace(out, batch_wait_s=wait)
    if "cpu_budget" in table:
        out = replace(out, cpu_budget=parse_share(table["cpu_budget"], "watch.cpu_budget"))
    if "memory_limit" in table:
        out = replace(out, memory_limit=parse_memory(table["memory_limit"], "watch.memory_limit"))
    if "threads" in table:
        out = replace(out, threads=parse_int(table["threads"], "watch.threads", 1, 256))
    if "poll_interval" in table:
        out = replace(out, poll_interval_s=parse_duration(table["poll_interval"],
                                                          "watch.poll_interval"))  # fmt: skip
    if "retention_days" in table:
        value = table["retention_days"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= 36_500  # false for nan too
        ):
            raise ConfigError(f"watch.retention_days = {value!r} must be a number from 0 to 36500")
        out = replace(out, retention_days=float(value))
    return out


def _formats(table: Mapping[str, Any]) -> tuple[FieldMapping, ...]:
    if not table:
        return ()
    from conflictradar.ingest.formats import (
        names,  # polars: loaded only when mappings are configured
    )

    return load_mappings(table, reserved=frozenset(names()))


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """CONFLICTRADAR_<SECTION>_<KEY>=value -> {section: {key: value}} (scalar keys only)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith("CONFLICTRADAR_") or name in ("CONFLICTRADAR_DB",
                                                             "CONFLICTRADAR_CONFIG"):  # fmt: skip
            continue
        rest = name[len("CONFLICTRADAR_") :].lower()
        section, _, key = rest.partition("_")
        if section in _SECTIONS - {"alerts", "formats"} and key:
            out.setdefault(section, {})[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a .toml file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc


def load_settings(
    config: str | Path | None = None,
    db: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve the settings once: defaults < config file < environment < explicit arguments."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    config_path: Path | None
    if config is not None:
        config_path = Path(config)
    elif env.get("CONFLICTRADAR_CONFIG"):
        config_path = Path(env["CONFLICTRADAR_CONFIG"])
    elif (cwd / DEFAULT_CONFIG).is_file():
        config_path = cwd / DEFAULT_CONFIG
    else:
        config_path = None
    raw: dict[str, Any] = _read_toml(config_path) if config_path else {}
    unknown = set(raw) - _SECTIONS
    if unknown:
        raise ConfigError(
            f"unknown section [{sorted(unknown)[0]}] in {config_path}; "
            f"allowed sections are {', '.join(sorted(_SECTIONS))}"
        )
    for section, values in _env_overrides(env).items():
        merged = dict(raw.get(section) or {})
        merged.update(values)
        raw[section] = merged
    for section in _SECTIONS:
        if section in raw and not isinstance(raw[section], Mapping):
            raise ConfigError(f"[{section}] in {config_path} must be a table")
    base = config_path.parent if config_path else cwd
    db_path = Path(db) if db is not None else Path(env.get("CONFLICTRADAR_DB") or DEFAULT_DB)
    return Settings(
        db=db_path,
        config_path=config_path,
        ingest=_ingest(raw.get("ingest", {})),
        classify=parse_classify(raw.get("classify", {}), base),
        endpoints=_endpoints(raw.get("endpoints", {}), base),
        sql=_sql(raw.get("sql", {})),
        dashboard=_dashboard(raw.get("dashboard", {})),
        watch=_watch(raw.get("watch", {})),
        alerts=parse_alert_settings(raw.get("alerts", {})),
        formats=_formats(raw.get("formats", {})),
    )
