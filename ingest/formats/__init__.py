"""Format registry: every supported access-log format by name, in auto-detection order.

Each format module exposes `FORMATS: list[Format]`. A `Format.parse` takes decoded lines (a polars
String Series, envelopes already removed) and the file's `ParserState`, and returns a frame shaped
by `ingest.schema.finish`: one row per input line, same order, never raising on bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import polars as pl

from conflictradar.ingest.errors import UsageError
from conflictradar.ingest.mappings import FieldMapping


@dataclass
class ParserState:
    """What a parser must remember between batches of one file (persisted with its offset).

    `header` holds the field list of the last `#Fields:` directive (w3c, cloudfront), so a resumed
    or tailed file parses the same as one read in one go.
    """

    header: list[str] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps({"header": self.header, "extra": self.extra})

    @classmethod
    def loads(cls, text: str | None) -> ParserState:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(header=raw.get("header"), extra=dict(raw.get("extra") or {}))


ParseFn = Callable[[pl.Series, ParserState], pl.DataFrame]


@dataclass(frozen=True)
class Format:
    name: str
    parse: ParseFn
    summary: str
    # "json" for formats whose records are JSON objects, "text" otherwise (detection uses it to
    # try only the plausible family on a sample).
    family: str = "text"


class UnknownFormatError(UsageError, ValueError):
    """A `--format` name or `nginx:`/`apache:` pattern that cannot be used (one sentence)."""


def _registry() -> list[Format]:
    # Imported here so a broken optional module names itself instead of breaking every import.
    from conflictradar.ingest.formats import (
        appservers,
        aws,
        clf,
        jsonlog,
        nginx,
        proxies,
        rails,
        w3c,
    )

    ordered: list[Format] = []
    # Specific structured formats first, generic ones last: on a tie in clean parses the earlier
    # (more specific) format wins.
    # envoy takes both its default text format and JSON lines.
    ordered.extend(
        replace(f, family="any" if f.name == "envoy" else "json") for f in jsonlog.FORMATS
    )
    # Application servers last: their lines parse as nothing else, so they never take another
    # format's file (uvicorn and django skip lines without a request line, rails without its
    # Started/Completed records; an empty win is no win).
    for module in (w3c, aws, proxies, clf, nginx, appservers, rails):
        ordered.extend(module.FORMATS)
    return ordered


_FORMATS: list[Format] | None = None


def all_formats() -> list[Format]:
    global _FORMATS
    if _FORMATS is None:
        _FORMATS = _registry()
    return _FORMATS


def time_read_label(name: str) -> str:
    """`requests.format` of rows whose time is when they were read (the lines carry none)."""
    return f"{name} (time read)"


def names() -> list[str]:
    return [f.name for f in all_formats()]


def get_format(spec: str, mappings: Sequence[FieldMapping] = ()) -> Format:
    """Resolve a `--format` value: a registered name, `nginx:'<log_format string>'`,
    `apache:'<LogFormat string>'` (`tomcat:'<AccessLogValve pattern>'`) or the name of a
    `[formats.NAME]` JSON field mapping among `mappings`."""
    spec = spec.strip()
    if spec.startswith("nginx:"):
        from conflictradar.ingest.formats.nginx import nginx_format

        return nginx_format(spec[len("nginx:") :])
    if spec.startswith(("apache:", "tomcat:")):
        from conflictradar.ingest.formats.apache import apache_format

        kind, _, pattern = spec.partition(":")
        return apache_format(pattern, tomcat=kind == "tomcat")
    for fmt in all_formats():
        if fmt.name == spec:
            return fmt
    for mapping in mappings:
        if mapping.name == spec:
            from conflictradar.ingest.formats.jsonmapping import mapping_format

            return mapping_format(mapping)
    custom = "".join(f", {m.name}" for m in mappings)
    raise UnknownFormatError(
        f"unknown format {spec!r}; choose one of {', '.join(names())}{custom}, "
        "nginx:'<log_format>', apache:'<LogFormat>' or a [formats.NAME] table in the config file"
    )
