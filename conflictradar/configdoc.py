"""Settings definitions -> docs/configuration.md, and the check that the two have not drifted.

`python -m conflictradar.configdoc` rewrites docs/configuration.md; `--check` exits 1 when it is
stale or when the loaders accept a key the catalogue (`conflictradar.keys`) does not describe.
Which keys exist is asked of the loaders themselves: each table is loaded with an unknown key,
and the "allowed keys are ..." of the refusal is the truth the catalogue is compared with.
Defaults come from the settings dataclasses, not from this file.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from conflictradar.alerts.channels import Channel, ChannelKind
from conflictradar.alerts.config import AlertConfig, load_alert_config
from conflictradar.alerts.rules import Rule
from conflictradar.configcheck import toml_value
from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.mappings import FieldMapping
from conflictradar.ingest.settings import Settings, load_settings
from conflictradar.keys import (
    ALERT_KEYS,
    CHANNEL,
    CHANNEL_KEYS,
    FORMAT,
    FORMAT_KEYS,
    RULE_KEYS,
    RULES,
    SETTINGS_KEYS,
    Key,
)

T = TypeVar("T")
DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
PROBE = "zz_probe_key"
_ALLOWED = re.compile(r"allowed (?:keys|sections) are (.+?)\s*$")


def _refusal(raw: Mapping[str, Any]) -> str:
    """The loaders' ConfigError for the TOML document `raw` (written to a temp file)."""

    def dump(table: Mapping[str, Any], prefix: str) -> list[str]:
        lines = [f"[{prefix}]"] if prefix else []
        nested = []
        for k, v in table.items():
            if isinstance(v, Mapping):
                nested.append((k, v))
            elif isinstance(v, list) and v and isinstance(v[0], Mapping):
                for item in v:
                    nested_lines = dump(item, "")
                    lines.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
                    lines.extend(nested_lines)
            else:
                lines.append(f'"{k}" = {toml_value(v, "")}')
        for k, v in nested:
            lines.extend(dump(v, f"{prefix}.{k}" if prefix else k))
        return lines

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.toml"
        path.write_text("\n".join(dump(raw, "")) + "\n")
        try:
            settings = load_settings(config=path, env={}, cwd=Path(tmp))
            load_alert_config(settings, {}, require_secrets=False)
        except ConfigError as exc:
            return str(exc)
    raise AssertionError(f"the loaders accepted the unknown key in {raw}")


def _allowed(raw: Mapping[str, Any]) -> set[str] | None:
    """The keys the loader allows where `raw` puts an unknown one; None if it does not say."""
    match = _ALLOWED.search(_refusal(raw))
    return {k.strip() for k in match.group(1).split(",")} if match else None


def accepted_keys() -> dict[str, set[str]]:
    """Table -> the keys its loader accepts, asked of the loaders. A section of named tables
    (`[formats.NAME]`, `[alerts.channels.NAME]`) is listed as `section.NAME`."""
    sections = _allowed({PROBE: {"x": 1}}) or set()
    out: dict[str, set[str]] = {}
    for section in sorted(sections):
        keys = _allowed({section: {PROBE: 1}})
        if keys is not None:
            out[section] = keys
            continue
        named = _allowed({section: {"x": {PROBE: 1}}})
        out[f"{section}.NAME"] = named if named is not None else {"(the loader lists no keys)"}
    out[CHANNEL] = _allowed({"alerts": {"channels": {"x": {PROBE: 1}}}}) or set()
    out[RULES] = _allowed({"alerts": {"rules": [{"name": "x", PROBE: 1}]}}) or set()
    return out


def documented_keys() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    tables: tuple[Sequence[Key[Any]], ...] = (
        SETTINGS_KEYS, ALERT_KEYS, CHANNEL_KEYS, RULE_KEYS, FORMAT_KEYS,
    )  # fmt: skip
    for keys in tables:
        for key in keys:
            out.setdefault(key.table, set()).add(key.name)
    return out


def drift() -> list[str]:
    """Sentences naming every key the loaders and the catalogue disagree on."""
    accepted, documented = accepted_keys(), documented_keys()
    problems = []
    for table in sorted(set(accepted) | set(documented)):
        for name in sorted(accepted.get(table, set()) - documented.get(table, set())):
            problems.append(f"{table}.{name} is accepted by the loader but not described in "
                            "conflictradar/keys.py")  # fmt: skip
        for name in sorted(documented.get(table, set()) - accepted.get(table, set())):
            problems.append(f"{table}.{name} is described in conflictradar/keys.py but the "
                            "loader refuses it")  # fmt: skip
    return problems


def _default(key: Key[T], base: T | None, long: list[str]) -> str:
    """The default as a table cell; a long one goes to `long` (printed below the table)."""
    if key.value is None or base is None:
        return "—"
    value = key.value(base)
    if value is None or value == "":
        return "not set"
    text = toml_value(value, key.kind)
    if len(text) <= 40:
        return f"`{text}`"
    long.append(f"Default `{key.path}`:\n\n```toml\n[{key.table}]\n{key.name} = {text}\n```\n")
    return "below"


def _table(keys: Sequence[Key[T]], base: T | None) -> list[str]:
    lines = ["| key | type | default | what it does |", "|---|---|---|---|"]
    long: list[str] = []
    for key in keys:
        doc = key.doc.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key.name}` | {key.kind} | {_default(key, base, long)} | {doc} |")
    if long:
        lines.append("")
        lines.extend(long)
    return lines


HEADER = """# Configuration reference

<!-- Generated by `python -m conflictradar.configdoc` from the settings definitions
     (conflictradar/keys.py + the loaders' defaults). Do not edit by hand: `make docs`. -->

Settings resolve once, in this order (later wins): built-in defaults < `conflictradar.toml`
(`--config FILE`, `$CONFLICTRADAR_CONFIG`, or `./conflictradar.toml` if present) <
`CONFLICTRADAR_<SECTION>_<KEY>` environment variables (scalar keys, e.g.
`CONFLICTRADAR_SQL_MAX_ROWS=500`) < command-line flags. `--db` / `$CONFLICTRADAR_DB` name the
database. An unknown key, a bad value or a missing named file is refused with one sentence that
names the key; `conflictradar config check [FILE]` validates a file and prints the effective
settings with secrets masked.

Durations are strings such as `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"` (or a number of
seconds). Secrets (webhook URLs, HMAC keys) are never written in the file: a channel names the
environment variable that holds each one.
"""


def render() -> str:
    settings = Settings()
    alerts = AlertConfig()
    out = [HEADER]
    section = ""
    for key in SETTINGS_KEYS:
        if key.table != section:
            if section:
                out.append("")
            section = key.table
            out.append(f"## `[{section}]`\n")
            out.extend(_table([k for k in SETTINGS_KEYS if k.table == section], settings))
    out.append("\n## `[alerts]`\n")
    out.append("Delivery policy and the tables below. Alerts end to end: [alerts.md](alerts.md).\n")
    out.extend(_table(list(ALERT_KEYS), alerts))
    out.append(f"\n## `[{CHANNEL}]`\n")
    out.append("One table per channel; rules name channels by `NAME`.\n")
    base = Channel("NAME", ChannelKind.WEBHOOK, "URL_ENV", None)
    out.extend(_table(list(CHANNEL_KEYS), base))
    out.append(f"\n## `[[{RULES}]]`\n")
    out.append("One table per rule. Defaults below; `name` is required.\n")
    out.extend(_table(list(RULE_KEYS), Rule(name="")))
    out.append(f"\n## `[{FORMAT}]`\n")
    out.append(
        "A JSON field mapping for your own JSON access log, used as `--format NAME`: a dotted "
        'key path per column (`req.method` reads `{"req": {"method": ...}}` or a '
        'literal `"req.method"` key). Formats: [README](../README.md#formats).\n'
    )
    out.extend(_table(list(FORMAT_KEYS), FieldMapping("NAME", ())))
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    problems = drift()
    for p in problems:
        print(f"configdoc: {p}", file=sys.stderr)
    text = render()
    if "--check" in args:
        stale = not DOC.exists() or DOC.read_text() != text
        if stale:
            print(f"configdoc: {DOC} is stale; run `make docs`", file=sys.stderr)
        return 1 if problems or stale else 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    print(f"configdoc: wrote {DOC}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
