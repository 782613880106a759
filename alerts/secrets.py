"""Settings -> notifiers: webhook URLs and HMAC keys as a type that never prints its value.

A `Secret` is read from the environment once, when the alert settings load; only the notifiers
call `reveal()`. Anything that may echo a secret back (an httpx error message, a response body)
goes through `redact` before it reaches a log line, an exception or a table.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "<secret>"


class Secret:
    """A string whose repr, str and format are `<secret>`; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")

    def fragments(self) -> tuple[str, ...]:
        """The value and, for a URL, its parts that identify it (path, query, credentials).

        Slack's webhook URL is its credential: an error that quotes only its path leaks it too.
        """
        parts = [self._value]
        try:
            url = urlsplit(self._value)
        except ValueError:
            return tuple(parts)
        if url.scheme and url.netloc:
            parts.extend(p for p in (url.path, url.query, url.password or "") if len(p) > 4)
            if url.username and len(url.username) > 4:
                parts.append(url.username)
        return tuple(parts)


def redact(text: str, secrets: Iterable[Secret | None]) -> str:
    """`text` with every fragment of every secret replaced by `<secret>`, longest first."""
    fragments = sorted(
        {f for s in secrets if s is not None for f in s.fragments() if f},
        key=len,
        reverse=True,
    )
    for fragment in fragments:
        text = text.replace(fragment, MASK)
    return text
