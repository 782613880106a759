"""The cause rules of SPEC section 5 as data (classify stage): one ordered table of (cause,
condition, evidence, confidence), from which the classifier's SQL is generated.

Conditions and evidence are SQL over one 409 request, as the classifier's `labelled` query sees
it: the client-facing line's columns (`method`, `path`, `client_ip`, `upstream_status`,
`last_segment`, ...), `other` (a line of the same request with a status other than 409),
`retry_w` / `race_w` (the earlier success that makes it a retry or a lost race) and `etext` (the
request's error text that decides, with the cause it names, or its first unrecognised text).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conflictradar.ingest.causes import Cause


class Confidence(StrEnum):
    CERTAIN = "certain"  # a status, a competing request or a recognised error text proves it
    INFERRED = "inferred"  # only the method or the path suggests it
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rule:
    cause: Cause | None  # None: the cause the request's error text names
    condition: str
    evidence: str
    confidence: Confidence


def _ts(col: str) -> str:
    return (
        f"(CASE WHEN microsecond({col}) % 1000000 = 0 THEN strftime({col}, '%H:%M:%S')"
        f" ELSE strftime({col}, '%H:%M:%S.%g') END || 'Z')"
    )


def _secs(col: str) -> str:
    return f"CAST(round((epoch_us(ts) - epoch_us({col})) / 1e6, 3) AS VARCHAR)"


def _at(struct: str) -> str:
    """`file.log:12` of a struct with `file` and `line` fields."""
    return f"regexp_extract({struct}.file, '[^/]+$') || ':' || {struct}.line"


# `the service's error text "..." (orders.jsonl:12)`
QUOTE = (
    "printf('the %s''s error text \"%s\" (%s)', etext.tier, left(etext.msg, 200), "
    + _at("etext")
    + ")"
)
# What the error text adds when another rule decided (computed once per request, as `note`):
# NULL when there is no text; a 409 with no text says so only when the method or path had to
# stand in for it.
NOTE_SQL = (
    "CASE WHEN etext.msg IS NULL THEN NULL"
    " WHEN etext.cause IS NULL THEN printf('; unrecognised error text: \"%s\" (the %s''s, %s)',"
    " left(etext.msg, 200), etext.tier, " + _at("etext") + ")"
    " ELSE '; ' || " + QUOTE + " || ' also points to ' || etext.cause END"
)
NOTE = "coalesce(note, '')"
NOTE_INFERRED = "coalesce(note, '; no error text')"

RULES: tuple[Rule, ...] = (
    Rule(
        Cause.GATEWAY_CONFLICT,
        "upstream_status IS NOT NULL AND upstream_status <> 409",
        "CASE WHEN upstream_status = 0 THEN 'the gateway answered 409 without reaching an"
        " upstream (no upstream host logged): the conflict came from the gateway, not the"
        " service' ELSE printf('the gateway answered 409 but the upstream returned %d: the"
        " conflict came from the gateway, not the service', upstream_status) END || " + NOTE,
        Confidence.CERTAIN,
    ),
    Rule(
        Cause.GATEWAY_CONFLICT,
        "other IS NOT NULL",
        "printf('the gateway answered 409 but the %s answered %d for the same request (%s): the"
        " conflict came from the gateway, not the service', other.tier, other.status, "
        + _at("other")
        + ") || "
        + NOTE,
        Confidence.CERTAIN,
    ),
    Rule(
        Cause.RETRY_AFTER_SUCCESS,
        "retry_w IS NOT NULL",
        "printf('retry of a request that already succeeded: the same client %s got %d for %s %s"
        " at %s, %s s earlier (%s)', client_ip, retry_w.status, method, path, "
        + _ts("retry_w.ts")
        + ", "
        + _secs("retry_w.ts")
        + ", "
        + _at("retry_w")
        + ") || "
        + NOTE,
        Confidence.CERTAIN,
    ),
    Rule(
        Cause.CONCURRENT_UPDATE,
        "race_w IS NOT NULL",
        "printf('lost a race: %s %s %s got %d at %s, %s s earlier (%s)',"
        " coalesce(race_w.ip, 'another client'), race_w.method, path, race_w.status, "
        + _ts("race_w.ts")
        + ", "
        + _secs("race_w.ts")
        + ", "
        + _at("race_w")
        + ") || "
        + NOTE,
        Confidence.CERTAIN,
    ),
    Rule(
        None,
        "etext.cause IS NOT NULL",
        QUOTE + " || CASE WHEN etext.label IS NOT NULL THEN ': ' || etext.label"
        " ELSE printf(' matched \"%s\"', etext.keyword) END",
        Confidence.CERTAIN,
    ),
    Rule(
        Cause.STATE_CONFLICT,
        "method = 'POST' AND list_contains($verbs, last_segment)",
        "printf('POST to the action `%s` and no earlier request in the windows: the resource''s"
        " state did not allow the action', last_segment) || " + NOTE_INFERRED,
        Confidence.INFERRED,
    ),
    Rule(
        Cause.DUPLICATE_CREATE,
        "method = 'POST'",
        "'POST with no earlier success from this client in ' || $retry_s || ' s: a create that"
        " collided with an existing resource' || " + NOTE_INFERRED,
        Confidence.INFERRED,
    ),
    Rule(
        Cause.VERSION_MISMATCH,
        "method IN ('PUT', 'PATCH')",
        "printf('%s with no other client''s write to %s in the last %s s: a stale write',"
        " method, path, $race_s) || " + NOTE_INFERRED,
        Confidence.INFERRED,
    ),
    Rule(
        Cause.STATE_CONFLICT,
        "method = 'DELETE'",
        "'DELETE with no race: the resource''s state does not allow deletion' || " + NOTE_INFERRED,
        Confidence.INFERRED,
    ),
    Rule(
        Cause.UNKNOWN,
        "true",
        "printf('no rule matched: %s with no upstream status and no competing request in the"
        " windows', coalesce(method, 'a request')) || " + NOTE_INFERRED,
        Confidence.UNKNOWN,
    ),
)


def _no_note(evidence: str) -> str:
    """Evidence SQL with the error text's note as it is without a text."""
    return evidence.replace(NOTE_INFERRED, "'; no error text'").replace(NOTE, "''")


def without_texts(rules: tuple[Rule, ...] = RULES) -> tuple[Rule, ...]:
    """The rules as they apply to requests with no error text and no other line (`etext` and
    `other` NULL: a range without texts or links): the rules that need either never hold, and
    the note is empty. `select_sql` over these gives the same rows for such requests, from a
    query DuckDB plans in about half the time (the live watcher's small ranges)."""
    return tuple(
        Rule(r.cause, r.condition, _no_note(r.evidence), r.confidence)
        for r in rules
        if "etext" not in r.condition and "other" not in r.condition
    )


def select_sql(rules: tuple[Rule, ...] = RULES) -> str:
    """`rule, cause, evidence, confidence` columns over the `labelled` relation: the first rule
    whose condition holds decides all three."""
    first = " ".join(f"WHEN {r.condition} THEN {i}" for i, r in enumerate(rules))
    causes = " ".join(
        f"WHEN {i} THEN " + (f"'{r.cause.value}'" if r.cause is not None else "etext.cause")
        for i, r in enumerate(rules)
    )
    evidence = " ".join(f"WHEN {i} THEN {r.evidence}" for i, r in enumerate(rules))
    confidence = " ".join(f"WHEN {i} THEN '{r.confidence.value}'" for i, r in enumerate(rules))
    note = f", {NOTE_SQL} AS note" if any(NOTE in r.evidence or NOTE_INFERRED in r.evidence
                                          for r in rules) else ""  # fmt: skip
    return (
        f"SELECT *, CASE rule {causes} END AS cause, CASE rule {evidence} END AS evidence,"
        f" CASE rule {confidence} END AS confidence"
        f" FROM (SELECT *, CASE {first} END AS rule{note} FROM labelled)"
    )
