"""Settings -> classify: the `[classify]` table as one typed, validated object.

Windows, action verbs, the error-text keywords per cause, the tiers' formats and the user's own
catalogue entries (`[[classify.catalogue]]`), with their defaults. Loaded with the rest of the
settings by `ingest.settings`, which is where the classifier and the tests import it from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conflictradar.ingest.catalogue import Entry
from conflictradar.ingest.causes import Cause
from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.setting_values import expect_keys, parse_duration, parse_words
from conflictradar.ingest.tiers import SERVICE_FORMATS

ACTION_VERBS: tuple[str, ...] = (
    "cancel", "approve", "submit", "pay", "confirm", "close", "reopen", "publish", "archive",
    "activate", "deactivate", "complete", "refund", "capture", "void", "start", "stop", "retry",
    "lock", "unlock", "merge", "checkout", "verify",
)  # fmt: skip

# Message keyword lists of SPEC section 5, in rule order (first matching cause wins).
KEYWORDS: dict[str, tuple[str, ...]] = {
    "version_mismatch": (
        "version", "etag", "e-tag", "revision", "stale", "precondition", "if-match",
        "modified since", "out of date", "outdated",
    ),
    "duplicate_create": ("already exists", "duplicate", "unique"),
    "resource_locked": (
        "lock", "locked", "in use", "busy", "being modified", "being processed", "being updated",
    ),
    "state_conflict": (
        "state", "status", "transition", "cannot", "can't", "not allowed", "already cancelled",
        "already closed", "already completed", "already paid", "already shipped",
        "already processed", "already refunded",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ClassifySettings:
    retry_window_s: float = 30.0
    race_window_s: float = 5.0
    # How long after a 409 its context may still change (late lines from another node):
    # it is re-evaluated while younger than this, relative to the newest line seen.
    settle_s: float = 120.0
    action_verbs: tuple[str, ...] = ACTION_VERBS
    keywords: tuple[tuple[str, tuple[str, ...]], ...] = tuple(KEYWORDS.items())
    # Lines of one request id within this many seconds are one request (SPEC section 3).
    join_window_s: float = 60.0
    service_formats: tuple[str, ...] = SERVICE_FORMATS
    # The user's error-text entries (`[[classify.catalogue]]`), tried before the bundled ones.
    catalogue: tuple[Entry, ...] = ()


def parse_classify(table: Mapping[str, Any], base: Path) -> ClassifySettings:
    expect_keys(table, {"retry_window", "race_window", "settle", "action_verbs", "keywords",
                        "join_window", "service_formats", "catalogue"}, "classify")  # fmt: skip
    out = ClassifySettings()
    if "join_window" in table:
        out = replace(out, join_window_s=parse_duration(table["join_window"],
                                                        "classify.join_window"))  # fmt: skip
    if "service_formats" in table:
        out = replace(out, service_formats=parse_words(table["service_formats"],
                                                       "classify.service_formats"))  # fmt: skip
    if "catalogue" in table:
        out = replace(out, catalogue=_catalogue(table["catalogue"]))
    if "retry_window" in table:
        out = replace(out, retry_window_s=parse_duration(table["retry_window"],
                                                         "classify.retry_window"))  # fmt: skip
    if "race_window" in table:
        out = replace(out, race_window_s=parse_duration(table["race_window"],
                                                        "classify.race_window"))  # fmt: skip
    if "settle" in table:
        out = replace(out, settle_s=parse_duration(table["settle"], "classify.settle"))
    if "action_verbs" in table:
        out = replace(out, action_verbs=parse_words(table["action_verbs"], "classify.action_verbs"))
    if "keywords" in table:
        kw = table["keywords"]
        if not isinstance(kw, Mapping):
            raise ConfigError("classify.keywords must be a table of cause = [words]")
        expect_keys(kw, set(KEYWORDS), "classify.keywords")
        merged = dict(out.keywords)
        for cause, words in kw.items():
            merged[cause] = parse_words(words, f"classify.keywords.{cause}")
        out = replace(out, keywords=tuple(merged.items()))
    return out


_CATALOGUE_KEYS = {"system", "name", "pattern", "cause", "example", "source"}
_TEXT_CAUSES = ("version_mismatch", "duplicate_create", "resource_locked", "state_conflict")


def _catalogue(value: object) -> tuple[Entry, ...]:
    """`[[classify.catalogue]]` tables: system, pattern and cause required."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError("classify.catalogue must be an array of tables ([[classify.catalogue]])")
    out = []
    for i, item in enumerate(value):
        where = f"classify.catalogue[{i}]"
        expect_keys(item, _CATALOGUE_KEYS, where)
        for key in ("system", "pattern", "cause"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"{where}.{key} is required (a non-empty string)")
        if item["cause"] not in _TEXT_CAUSES:
            raise ConfigError(
                f"{where}.cause = {item['cause']!r} is not allowed; use one of "
                + ", ".join(_TEXT_CAUSES)
            )
        try:
            re.compile(item["pattern"])
        except re.error as exc:
            raise ConfigError(f"{where}.pattern = {item['pattern']!r} is not a regular"
                              f" expression: {exc}") from None  # fmt: skip
        out.append(Entry(str(item["system"]), str(item.get("name", "")), str(item["pattern"]),
                         Cause(item["cause"]), str(item.get("example", "")),
                         str(item.get("source", "conflictradar.toml"))))  # fmt: skip
    return tuple(out)
