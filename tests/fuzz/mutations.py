"""Mutation operators over one log line: what broken writers, clocks and hostile fields produce.

Each operator takes the line and `pick(n)`, a source of choices in [0, n): `random.Random
.randrange` for the long runs, a hypothesis draw in the property suite (so failures shrink).
"""

from __future__ import annotations

import re
from collections.abc import Callable

Pick = Callable[[int], int]
Mutation = Callable[[bytes, Pick], bytes]

# Bytes a mutation inserts: control characters, quotes and brackets the parsers split on,
# invalid UTF-8, a NUL, and a line break (one line becoming two must be accounted for too).
ODD_BYTES = [b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b'"', b"\\", b"[", b"]", b"{", b"}",
             b" ", b"\t", b"\r", b"\n", b"\x1b[31m", b"%", b"'", b",", b":", b"|"]  # fmt: skip
# What a JSON value becomes.
ODD_VALUES = [b"1e309", b"-1e400", b"99999999999999999999999999999", b"-9223372036854775809",
              b"null", b"true", b"[]", b"{}", b'{"a":{"b":[1,{"c":null}]}}', b'""', b'"\\ud800"',
              b'"\\u0000"', b"NaN", b"-0", b"0.0000001", b'"' + b"x" * 3000 + b'"',
              b'[[[[[[[[[[1]]]]]]]]]]']  # fmt: skip
# What a timestamp becomes.
ODD_TIMES = [b"-2025-11-20T08:00:05Z", b"9999-12-31T23:59:59.000Z", b"0000-00-00T00:00:00Z",
             b"2025-02-30T25:61:61Z", b"1969-12-31T23:59:59Z", b"20/Nov/-2025:08:00:05 +0000",
             b"31/Dec/9999:23:59:59 +0000", b"00/Xyz/0000:99:99:99 +9999", b"1e30", b"-1",
             b"99999999999999999999", b"253402300800000", b"2025-11-20T08:00:05+99:99",
             b"+275760-09-13T00:00:00Z"]  # fmt: skip
_JSON_VALUE = re.compile(rb'(?<=":)\s*("(?:[^"\\]|\\.)*"|-?[0-9.eE+-]+|true|false|null)')
_TIME = re.compile(
    rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    rb"|\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?|\b1\d{9}(?:\d{3})?(?:\.\d+)?\b"
)
_NUMBER = re.compile(rb"\b\d+\b")


def insert_bytes(line: bytes, pick: Pick) -> bytes:
    at = pick(len(line) + 1)
    return line[:at] + ODD_BYTES[pick(len(ODD_BYTES))] + line[at:]


def truncate(line: bytes, pick: Pick) -> bytes:
    return line[: pick(len(line) + 1)]


def swap(line: bytes, pick: Pick) -> bytes:
    if len(line) < 2:
        return line
    i, j = pick(len(line)), pick(len(line))
    b = bytearray(line)
    b[i], b[j] = b[j], b[i]
    return bytes(b)


def delete_span(line: bytes, pick: Pick) -> bytes:
    at = pick(len(line) + 1)
    return line[:at] + line[at + 1 + pick(8) :]


def duplicate_span(line: bytes, pick: Pick) -> bytes:
    at = pick(len(line) + 1)
    span = line[at : at + 1 + pick(40)]
    return line[:at] + span + span + line[at + len(span) :]


def _replace_match(
    line: bytes, pattern: re.Pattern[bytes], pick: Pick, values: list[bytes]
) -> bytes:
    found = list(pattern.finditer(line))
    value = values[pick(len(values))]
    if not found:
        return line + b" " + value
    m = found[pick(len(found))]
    return line[: m.start()] + value + line[m.end() :]


def json_value(line: bytes, pick: Pick) -> bytes:
    """A JSON value replaced by a huge number, null, a nested object, an odd string..."""
    return _replace_match(line, _JSON_VALUE, pick, ODD_VALUES)


def impossible_time(line: bytes, pick: Pick) -> bytes:
    """A timestamp replaced by an impossible or absurd one."""
    return _replace_match(line, _TIME, pick, ODD_TIMES)


def huge_number(line: bytes, pick: Pick) -> bytes:
    """A number (status, bytes, duration, port...) replaced by one no column can hold."""
    return _replace_match(line, _NUMBER, pick, [*ODD_VALUES[:4], b"0", b"65536", b"-409"])


MUTATIONS: list[Mutation] = [insert_bytes, truncate, swap, delete_span, duplicate_span,
                             json_value, impossible_time, huge_number]  # fmt: skip


def mutate(line: bytes, pick: Pick, rounds: int = 1) -> bytes:
    """`line` with `rounds` mutations applied in a row."""
    for _ in range(rounds):
        line = MUTATIONS[pick(len(MUTATIONS))](line, pick)
    return line
