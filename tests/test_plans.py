"""Parse queries recorded once and replayed per block (ingest.plans) give what building them
afresh gives, and what a block carries besides its lines (time, file, line numbers, folds)
never sticks to a cached plan."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conflictradar.ingest import endpoints
from conflictradar.ingest.blocks import Context, Parsed, parse_block
from conflictradar.ingest.formats import ParserState, get_format
from conflictradar.ingest.formats.clf import _clf_query
from conflictradar.ingest.plans import Plan, record
from conflictradar.ingest.schema import STRAY, TOO_LATE
from conflictradar.ingest.settings import load_settings

LINES = [
    '1.2.3.4 - - [10/Oct/2025:13:55:36 +0000] "GET /a/1?x=1 HTTP/1.1" 409 12 "-" "ua \\"q\\""',
    '"10.0.0.1, 10.0.0.2" 1.2.3.4 - - [10/Oct/2025:13:55:36 +0000] "PUT /a/2 HTTP/1.1" 200 1'
    ' "-" "ua" 0.125',
    'vhost:80 1.2.3.4 - - [10/Oct/2025:13:55:36 +0000] "POST http://h/b/SKU-77 HTTP/1.1" 201 -'
    ' "-" "-"',
    "not a line",
    "",
]


@pytest.mark.parametrize("kind", ["combined", "common", "vcombined"])
@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("quoted_chain", [False, True])
def test_a_recorded_query_gives_what_the_builder_gives(
    kind: str, escaped: bool, quoted_chain: bool
) -> None:
    build = _clf_query(kind, escaped, quoted_chain)
    frame = pl.DataFrame({"line": LINES})
    plan = record(build)
    assert_frame_equal(plan.apply(frame.lazy()).collect(), build(frame.lazy()).collect())
    assert plan.schema({"line": pl.String()}) == build(frame.lazy()).collect_schema()


def test_plans_chain_without_changing_each_other() -> None:
    first = Plan().with_columns(pl.col("a").alias("b"))
    both = first.then(Plan().drop("a"))
    frame = pl.LazyFrame({"a": [1, 2]})
    assert first.apply(frame).collect().columns == ["a", "b"]
    assert both.apply(frame).collect().columns == ["b"]


def _parse(
    data: bytes, path: str, first_line: int, folds: tuple[endpoints.Fold, ...] = ()
) -> Parsed:
    settings = load_settings(env={})
    fmt = get_format("combined", settings.formats)
    ctx = Context(settings, (), folds)
    return parse_block(data, 0, first_line, False, (), fmt, None, ParserState(), ctx, path, True)


def _line(user: str, when: str = "10/Oct/2025:13:55:36", status: int = 200) -> str:
    return f'1.2.3.4 - - [{when} +0000] "GET /users/{user}/cart HTTP/1.1" {status} 5 "-" "ua"\n'


def test_what_varies_per_block_is_never_cached() -> None:
    data = (_line("alice", status=409) + _line("bob")).encode()
    one = _parse(data, "/logs/one.log", 1)
    two = _parse(data, "/logs/two.log", 40, (endpoints.Fold("/users", 2),))
    assert one.requests.select("file", "line", "endpoint").rows() == [
        ("/logs/one.log", 1, "/users/alice/cart"),
        ("/logs/one.log", 2, "/users/bob/cart"),
    ]
    assert two.requests.select("file", "line", "endpoint").rows() == [
        ("/logs/two.log", 40, "/users/{id}/cart"),
        ("/logs/two.log", 41, "/users/{id}/cart"),
    ]
    assert two.conflict_lines.select("file", "line").rows() == [("/logs/two.log", 40)]
    # The time limit is the wall clock of each call: a line from a year ahead is refused.
    ahead = f"10/Oct/{datetime.now(UTC).year + 1}:13:55:36"
    later = _parse(_line("carol", ahead).encode(), "/logs/three.log", 7)
    assert later.rejects.select("line", "reason").rows() == [(7, TOO_LATE)]


def test_a_stray_time_is_found_only_where_the_block_spans_days() -> None:
    lines = [_line(f"u{i}", f"10/Oct/2025:13:55:{i:02d}") for i in range(5)]
    calm = _parse("".join(lines).encode(), "/l", 1)
    lines[2] = _line("u2", "10/Oct/1999:13:55:02")
    glitch = _parse("".join(lines).encode(), "/l", 1)
    assert calm.rejects.height == 0 and calm.requests.height == 5
    assert glitch.rejects.select("line", "reason").rows() == [(3, STRAY)]
    assert glitch.requests["line"].to_list() == [1, 2, 4, 5]
