"""Settings -> notifiers: webhook URLs and HMAC keys as a type that never prints its value.

A `Secret` is read from the environment once, when the alert settings load; only the notifiers
call `reveal()`. Anything that may echo a secret back (an httpx error message, a response body)
goes through `redact` before it reaches a log line, an exception or a table.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

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
        """Every form of the value an error text may echo: the value; for a URL its parts that
        identify it (path, query, credentials) -- Slack's webhook URL is its credential, so an
        error that quotes only its path leaks it too; each of those percent-encoded and
        percent-decoded; and the `Basic` credential httpx derives from URL userinfo."""
        parts = {self._value}
        try:
            url = urlsplit(self._value)
        except ValueError:
            url = None
        if url is not None and url.scheme and url.netloc:
            parts.update(p for p in (url.path, url.query) if len(p) > 4)
            user, password = url.username or "", url.password or ""
            parts.update(p for p in (user, password) if len(p) > 4)
            if user or password:
                pair = f"{unquote(user)}:{unquote(password)}".encode()
                parts.add(base64.b64encode(pair).decode())
        for part in list(parts):
            parts.update({quote(part, safe=""), quote(part, safe="/"), unquote(part),
                          quote_plus(part), unquote_plus(part)})  # fmt: skip
        return tuple(p for p in parts if len(p) > 4)


def redact(text: str, secrets: Iterable[Secret | None]) -> str:
    """`text` with every fragment of every secret replaced by `<secret>`, longest first."""
    fragments = sorted(
        {f for s in secrets if s is not None for f in s.fragments() if f},
        key=len,
        reverse=True,
    )
    if not fragments:
        return text
    # Case-insensitively: percent-encoding may be written %2f or %2F.
    pattern = re.compile("|".join(re.escape(f) for f in fragments), re.IGNORECASE)
    return pattern.sub(MASK, text)


def without_userinfo(
    url: Secret, headers: Iterable[tuple[str, str]]
) -> tuple[Secret, tuple[tuple[str, str], ...]]:
    """The URL without `user:password@`, and the headers with that credential as an explicit
    `Authorization: Basic` -- unless the channel already sends its own Authorization (a configured
    bearer token): httpx would otherwise put the userinfo's Basic credential in its place."""
    headers = tuple(headers)
    try:
        parts = urlsplit(url.reveal())
        port = parts.port
    except ValueError:  # the request fails later with a (redacted) invalid-URL error
        return url, headers
    if parts.username is None and parts.password is None:
        return url, headers
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    bare = Secret(urlunsplit(parts._replace(netloc=netloc)))
    if any(name.lower() == "authorization" for name, _ in headers):
        return bare, headers
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    return bare, (*headers, ("Authorization", "Basic " + base64.b64encode(pair).decode()))
