"""Error texts -> causes (classify stage): normalise what systems write, then match the catalogue
of real error texts and the keyword lists of SPEC section 5, vectorized in DuckDB.

Matching runs over the *distinct* texts of the 409 requests being explained (real logs repeat a
handful of texts), so its cost does not grow with the number of lines. The catalogue comes first:
an entry knows what a system means (`ObjectOptimisticLockingFailureException` is a stale version,
though "locking" is a resource_locked keyword); keywords then decide in cause order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.catalogue import CATALOGUE, Entry
from ingest.causes import Cause

# Keywords that must start a word (SPEC: `lock`; `locked` too, or "blocked" would match it).
WORD_START = ("lock", "locked")


def keyword_pattern(words: tuple[str, ...]) -> str:
    """One RE2 alternation capturing the matched keyword; word-start keywords get `\\b`."""
    parts = []
    for word in sorted(words, key=len, reverse=True):
        escaped = re.escape(word.lower())
        parts.append(rf"\b{escaped}" if word.lower() in WORD_START else escaped)
    return "(" + "|".join(parts) + ")" if parts else "($^)"


def normalise(text: str) -> str:
    """What the SQL `normalised()` computes, in Python (documentation and tests): CamelCase,
    snake_case and dotted class names become lowercase words, so `ContainerAlreadyExists`,
    `already_exists` and `AlreadyExistsException` all read "already exists"."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"[_.]+", " ", text).lower()
    return re.sub(r"\s+", " ", text).strip()


def normalised(col: str) -> str:
    """SQL for `normalise(col)`."""
    split = (
        f"regexp_replace(regexp_replace({col}, '([A-Z]+)([A-Z][a-z])', '\\1 \\2', 'g'),"
        " '([a-z0-9])([A-Z])', '\\1 \\2', 'g')"
    )
    words = f"lower(regexp_replace({split}, '[_.]+', ' ', 'g'))"
    return f"trim(regexp_replace({words}, '\\s+', ' ', 'g'))"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Matcher:
    """The ordered patterns a text is tried against: catalogue entries, then keyword groups."""

    entries: tuple[Entry, ...]
    keywords: tuple[tuple[Cause, str], ...]  # (cause, keyword_pattern) in cause order

    @classmethod
    def build(
        cls, keywords: tuple[tuple[str, tuple[str, ...]], ...], extra: tuple[Entry, ...] = ()
    ) -> Matcher:
        """The user's entries (config) come before the bundled catalogue: they know their
        systems best."""
        groups = tuple((Cause(cause), keyword_pattern(words)) for cause, words in keywords)
        return cls(entries=(*extra, *CATALOGUE), keywords=groups)

    def sql(self, texts: str) -> str:
        """SELECT over `texts(msg)`: msg, cause (NULL: unrecognised), label (the catalogue's name
        for the text) and keyword (the keyword that matched)."""
        n = len(self.entries)
        whens = []
        for i, e in enumerate(self.entries):
            p = _literal("(?i)" + e.pattern)
            whens.append(f"WHEN regexp_matches(msg, {p}) OR regexp_matches(norm, {p}) THEN {i}")
        for j, (_cause, pattern) in enumerate(self.keywords):
            p, raw = _literal(pattern), _literal("(?i)" + pattern)
            whens.append(
                f"WHEN regexp_matches(norm, {p}) OR regexp_matches(msg, {raw}) THEN {n + j}"
            )
        causes = [str(e.cause) for e in self.entries] + [str(c) for c, _ in self.keywords]
        labels = [e.label for e in self.entries]
        kw_extract = " ".join(
            f"WHEN {n + j} THEN coalesce(nullif(regexp_extract(norm, {_literal(p)}, 1), ''),"
            f" lower(regexp_extract(msg, {_literal('(?i)' + p)}, 1)))"
            for j, (_c, p) in enumerate(self.keywords)
        )
        rank = f"CASE {' '.join(whens)} END" if whens else "NULL::INTEGER"
        return f"""
SELECT msg,
       list_extract([{", ".join(_literal(c) for c in causes)}]::VARCHAR[], rank + 1) AS cause,
       CASE WHEN rank < {n} THEN
           list_extract([{", ".join(_literal(x) for x in labels) or "''"}]::VARCHAR[], rank + 1)
       END AS label,
       CASE rank {kw_extract or "WHEN -1 THEN NULL"} END AS keyword,
       rank
FROM (SELECT msg, norm, {rank} AS rank
      FROM (SELECT msg, {normalised("msg")} AS norm FROM {texts}))
"""
