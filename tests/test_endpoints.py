"""Endpoint templates from identifier shapes: both ways of computing them (the whole-path regex
of large blocks, segment by segment for small ones) against an independent segment-by-segment
reading of the same rules, on named examples, real logs' paths and a large random corpus."""

from __future__ import annotations

import random
import re
from pathlib import Path

import polars as pl
import pytest

from conflictradar.ingest import endpoints

# The rules as they read per segment: a segment holding a digit, an @ or a %40 that has one of
# these shapes is an identifier. Written independently of the regex under test (Python's `re`,
# one segment at a time, the digit rule as its own check).
_PLAIN_SHAPES = [
    r"\d+",
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    r"[0-9a-fA-F]{8,}",
    r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}",
    r"[A-Za-z]{1,12}[_-][A-Za-z0-9]*\d[A-Za-z0-9]*",
    r"[A-Za-z]{1,4}\d{3,}[A-Za-z0-9]*",
    r"[^@/]+(?:@|%40)[^@/]+\.[^@/]+",
    r"\d{4}-\d\d-\d\d(?:[T ][0-9:.]+Z?)?",
    r"\d+(?:[.,-]\d+)+",
    r"[A-Za-z0-9_~=+-]{20,}",
    r"[A-Za-z0-9+/_-]{16,}={0,2}",
]
_SHAPE = re.compile("(?:" + "|".join(_PLAIN_SHAPES) + ")")
_MAYBE = re.compile(r"[0-9@]|%40")


def reference(path: str) -> str:
    return "/".join(
        "{id}" if _MAYBE.search(seg) and _SHAPE.fullmatch(seg) else seg for seg in path.split("/")
    )


def templated(paths: list[str], whole_path: bool) -> list[str]:
    frame = pl.DataFrame({"path": paths}, schema={"path": pl.String})
    expr = endpoints.heuristic_templates(pl.col("path"), whole_path)
    return frame.select(expr).to_series().to_list()


BOTH = pytest.mark.parametrize("whole_path", [True, False], ids=["whole-path", "by-segment"])


EXAMPLES = {
    "/orders/42/items/SKU-4417": "/orders/{id}/items/{id}",
    "/a/1/2/3/b/4/5": "/a/{id}/{id}/{id}/b/{id}/{id}",  # identifiers in a row
    "/users/550e8400-e29b-41d4-a716-446655440000": "/users/{id}",
    "/users/abcdefab-abcd-abcd-abcd-abcdefabcdef": "/users/abcdefab-abcd-abcd-abcd-abcdefabcdef",
    "/blobs/deadbeef1": "/blobs/{id}",
    "/blobs/deadbeef": "/blobs/deadbeef",  # hex letters only: a word
    "/posts/this-is-a-long-slug-name-here": "/posts/this-is-a-long-slug-name-here",
    "/tokens/this-is-a-long-slug-name-here1": "/tokens/{id}",
    "/b64/QUJDREVGR0hJSktMTU5PUA==": "/b64/{id}",
    "/b64/abcdefghijklmnop": "/b64/abcdefghijklmnop",
    "/ulid/01ARZ3NDEKTSV4RRFFQ69G5FAV": "/ulid/{id}",
    "/invoices/inv_8f3a/INV2024001/u12345": "/invoices/{id}/{id}/{id}",
    "/people/a@b.co/me%40x.org": "/people/{id}/{id}",
    "/days/2024-01-02/2024-01-02T10:00:00Z": "/days/{id}/{id}",
    "/v/1.2.3/2024-001": "/v/{id}/{id}",
    "/api/v1beta/orders": "/api/v1beta/orders",
    "/api-v2/orders": "/{id}/orders",  # a prefixed id's shape (SKU-4417): a known false positive
    "abc123": "{id}",  # no leading slash: segments all the same
    "/orders/42/": "/orders/{id}/",
    "/1//2": "/{id}//{id}",
    "/": "/",
    "*": "*",
    "": "",
}


@BOTH
def test_named_shapes(whole_path: bool) -> None:
    assert templated(list(EXAMPLES), whole_path) == list(EXAMPLES.values())
    assert [reference(p) for p in EXAMPLES] == list(EXAMPLES.values())


@BOTH
def test_null_path_stays_null(whole_path: bool) -> None:
    assert templated([None, "/orders/7"], whole_path) == [None, "/orders/{id}"]  # type: ignore[list-item]


@BOTH
def test_real_logs_paths_as_segment_by_segment(real_logs: Path, whole_path: bool) -> None:
    request = re.compile(rb'"[A-Z]{3,7} (/[^ "?]*)')
    paths = sorted({m.group(1).decode("utf-8", "replace")
                    for f in real_logs.rglob("*") if f.is_file() and f.stat().st_size < 50 << 20
                    for m in request.finditer(f.read_bytes())})  # fmt: skip
    assert len(paths) > 1000  # the folder holds thousands of distinct request paths
    assert templated(paths, whole_path) == [reference(p) for p in paths]


@BOTH
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_paths_as_segment_by_segment(seed: int, whole_path: bool) -> None:
    rnd = random.Random(seed)
    pieces = [*(k.rsplit("/", 1)[-1] for k in EXAMPLES), "0", "7" * 30, "x" * 30, "%40", "@",
              "a1", "ab123", "abcde123", "ABCDEFGH", "abcdefg1", "1abcdefg", "abcdef1234567890",
              "++--__==~~++--__==~~1", "0123456789abcdef0123456789ab", "é1", "a b 1"]  # fmt: skip
    alphabet = "abcdefABCDEFxyzXYZ0123456789-_.~=+@%40:T Z/é"
    paths = []
    for _ in range(40_000):
        segments = [rnd.choice(pieces) if rnd.random() < 0.6 else
                    "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
                    for _ in range(rnd.randint(1, 6))]  # fmt: skip
        lead = "" if rnd.random() < 0.05 else "/"
        paths.append(lead + "/".join(segments) + ("/" if rnd.random() < 0.1 else ""))
    got = templated(paths, whole_path)
    wrong = [(p, g, reference(p)) for p, g in zip(paths, got, strict=True) if g != reference(p)]
    assert not wrong, wrong[:5]
    assert sum("{id}" in g for g in got) > 10_000  # the corpus exercises the shapes


def test_blocks_of_either_size_store_the_same_endpoints(tmp_path: Path) -> None:
    """A block under `WHOLE_PATH_ROWS` lines and one over it give the same rows their endpoints."""
    from conflictradar.ingest.blocks import Context, parse_block
    from conflictradar.ingest.formats import get_format
    from conflictradar.ingest.settings import load_settings

    rnd = random.Random(5)
    shapes = ["/orders/{}", "/users/{}/cart/{}", "/blobs/deadbeef{}", "/u/a{}@x.org", "/v/1.{}.3"]
    lines = [f'10.0.0.{i % 250} - - [02/Jun/2025:08:00:00 +0000] "GET '
             f'{rnd.choice(shapes).format(rnd.randint(0, 10**7), i)} HTTP/1.1" 409 12 "-" "t"\n'
             for i in range(endpoints.WHOLE_PATH_ROWS + 10)]  # fmt: skip
    ctx = Context(load_settings(db=tmp_path / "x.duckdb", env={}), (), ())
    fmt = get_format("combined")

    def stored(data: bytes) -> list[str]:
        parsed = parse_block(data, 0, 1, False, (), fmt, None, None, ctx, "a.log", False)
        return parsed.requests["endpoint"].to_list()

    small = [
        e for i in range(0, len(lines), 100) for e in stored("".join(lines[i : i + 100]).encode())
    ]
    assert stored("".join(lines).encode()) == small
    assert len(set(small)) == len(shapes)
