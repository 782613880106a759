"""Error texts -> causes (classify stage): normalise what systems write, then match the catalogue
of real error texts and the keyword lists of SPEC section 5, vectorized in DuckDB.

Each distinct text is matched once and remembered in `text_matches` (its cause, or NULL when
nothing recognised it): real logs repeat a handful of texts, and the regular expressions cost
far more to compile than to run, so a batch whose texts are all known compiles none. As SPEC 5
says, the first match in cause order decides, whichever way it matched: `ObjectOptimistic-
LockingFailureException` is a stale version (its catalogue entry) before it is a lock ("locking"
is a resource_locked keyword). Within one cause a catalogue entry comes before the keywords, so
evidence names the system that wrote the text; the user's own entries (config) come first of all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import duckdb

from conflictradar.ingest.catalogue import CATALOGUE, Entry
from conflictradar.ingest.causes import Cause

# Keywords that must start a word (SPEC: `lock`; `locked` too, or "blocked" would match it).
WORD_START = ("lock", "locked")


def keyword_pattern(words: tuple[str, ...]) -> str:
    """One RE2 alternation capturing the matched keyword; word-start keywords get `\\b`."""
    parts = []
    for word in sorted(words, key=len, reverse=True):
        escaped = re.escape(normalise(word))
        parts.append(rf"\b{escaped}" if word.lower() in WORD_START else escaped)
    return "(" + "|".join(parts) + ")" if parts else "($^)"


def normalise(text: str) -> str:
    """What the SQL `normalised()` computes, in Python (documentation and tests): CamelCase,
    snake_case and dotted class names become lowercase words, so `ContainerAlreadyExists`,
    `already_exists` and `AlreadyExistsException` all read "already exists" (`ETag` stays one
    word: an acronym splits off only when it has two letters or more, as in `HTTPConflict`)."""
    text = re.sub(r"([A-Z]{2,})([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"[_.]+", " ", text).lower()
    return re.sub(r"\s+", " ", text).strip()


def normalised(col: str) -> str:
    """SQL for `normalise(col)`."""
    split = (
        f"regexp_replace(regexp_replace({col}, '([A-Z]{{2,}})([A-Z][a-z])', '\\1 \\2', 'g'),"
        " '([a-z0-9])([A-Z])', '\\1 \\2', 'g')"
    )
    words = f"lower(regexp_replace({split}, '[_.]+', ' ', 'g'))"
    return f"trim(regexp_replace({words}, '\\s+', ' ', 'g'))"


def pattern_for_normalised(pattern: str) -> str:
    """A catalogue pattern as it applies to normalised text: lowercase, `_` read as a space."""
    return pattern.lower().replace("_", " ")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Matcher:
    """The ordered patterns a text is tried against: catalogue entries, then keyword groups."""

    entries: tuple[Entry, ...]
    keywords: tuple[tuple[Cause, str], ...]  # (cause, keyword_pattern) in cause order
    user_entries: int = 0  # the first entries are the user's (config)

    @classmethod
    def build(
        cls, keywords: tuple[tuple[str, tuple[str, ...]], ...], extra: tuple[Entry, ...] = ()
    ) -> Matcher:
        """The user's entries (config) come before everything: they know their systems best."""
        groups = tuple((Cause(cause), keyword_pattern(words)) for cause, words in keywords)
        return cls(entries=(*extra, *CATALOGUE), keywords=groups, user_entries=len(extra))

    @property
    def fingerprint(self) -> str:
        """Changes whenever a pattern, its order or its cause does (remembered matches then
        no longer hold)."""
        parts = [f"cause-order {self.user_entries}"]
        parts += [f"{e.cause}\t{e.label}\t{e.pattern}" for e in self.entries]
        parts += [f"{c}\t{p}" for c, p in self.keywords]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def ordered(self) -> list[tuple[Cause, str, str | None]]:
        """Every pattern as (cause, pattern on normalised text, catalogue label or None for a
        keyword), in the order SPEC 5 matches them: first match in cause order. The user's own
        entries (config) come before all (an explicit override of the defaults); within a cause
        the bundled catalogue comes before the keywords (it names the system); a pattern's
        position is its rank."""
        order = {cause: i for i, cause in enumerate(Cause)}
        found: list[tuple[int, int, Cause, str, str | None]] = [
            (-1 if i < self.user_entries else order[e.cause], i, e.cause,
             pattern_for_normalised(e.pattern), e.label)
            for i, e in enumerate(self.entries)
        ]  # fmt: skip
        found += [
            (order[c], len(self.entries) + j, c, p, None) for j, (c, p) in enumerate(self.keywords)
        ]
        return [(c, p, label) for _o, _i, c, p, label in sorted(found)]

    def sql(self, texts: str) -> str:
        """SELECT over `texts(msg)`: msg, cause (NULL: unrecognised), label (the catalogue's name
        for the text), keyword (the keyword that matched) and rank (the pattern's position)."""
        ordered = self.ordered()
        whens = " ".join(
            f"WHEN regexp_matches(norm, {_literal(p)}) THEN {i}"
            for i, (_c, p, _l) in enumerate(ordered)
        )
        causes = [str(c) for c, _p, _l in ordered]
        labels = [_literal(label) if label is not None else "NULL" for _c, _p, label in ordered]
        keyword = " ".join(
            f"WHEN {i} THEN regexp_extract(norm, {_literal(p)}, 1)"
            for i, (_c, p, label) in enumerate(ordered)
            if label is None
        )
        rank = f"CASE {whens} END" if whens else "NULL::INTEGER"
        return f"""
SELECT msg,
       list_extract([{", ".join(_literal(c) for c in causes) or "''"}]::VARCHAR[], rank + 1)
           AS cause,
       list_extract([{", ".join(labels) or "NULL"}]::VARCHAR[], rank + 1) AS label,
       CASE rank {keyword or "WHEN -1 THEN NULL"} END AS keyword,
       rank
FROM (SELECT msg, norm, {rank} AS rank
      FROM (SELECT msg, {normalised("msg")} AS norm FROM {texts}))
"""

    def remember(
        self, con: duckdb.DuckDBPyConnection, texts: str, params: dict[str, object]
    ) -> int:
        """Match the texts of `texts` (a SELECT of `msg`) not yet in `text_matches`, and add
        them; returns how many were new. Forgets every match made by other patterns first."""
        row = con.execute("SELECT value FROM meta WHERE key = 'text_matches'").fetchone()
        if row is None or row[0] != self.fingerprint:
            con.execute("DELETE FROM text_matches")
            con.execute(
                "INSERT INTO meta VALUES ('text_matches', ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value",
                [self.fingerprint],
            )
        new = f"SELECT DISTINCT t.msg FROM ({texts}) t ANTI JOIN text_matches m ON m.msg = t.msg"
        count = con.execute(f"SELECT count(*) FROM ({new})", params).fetchone()
        if not count or not count[0]:
            return 0
        con.execute(f"INSERT INTO text_matches {self.sql(f'({new})')}", params)
        return int(count[0])
