"""A watcher's look over many files: their small appends in one format parsed as one block
(`blocks.parse_segments`) before the files are read; each file's read then takes its part.

Parsing a block has a fixed cost (~5 ms of polars planning) that a few lines a file cannot
amortise: a host's 48 virtual-host logs growing by ten lines each cost ~260 ms a look in parsing
alone. The parts are kept by (file, start offset) with the bytes they came from, and a read takes
a part only if it reads exactly those bytes from there, with the same parsing context (no fold
recorded in between: the first read of a look that learns one records it, and the files read
after it are parsed alone, with it): anything else is parsed as before.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from conflictradar.ingest.blocks import Context, Parsed, Segment, parse_segments
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.sources import Opener, read_blocks

log = logging.getLogger(__name__)

# Formats whose lines parse each on its own, whatever else is in the block, and that keep no
# state between blocks: several files' lines give each file's rows. The JSON formats read only
# the keys some line of a block has, as null where a line lacks them (jsonrecords.Keys), so
# another file's keys change nothing. (A format that remembers a header, like w3c, or joins
# lines, like rails, must not join this list; tests/test_preparse.py holds every listed
# format to that, on real logs and the bundled samples.)
GROUPABLE = frozenset(
    {"combined", "common", "vcombined", "apigw", "caddy", "ecs", "envoy", "traefik"}
)
# Only appends this small are parsed together: the fixed cost is what grouping saves, and above
# ~300 lines a file's own parse amortises it, while a joint block doubles what is held at once.
GROUP_BYTES = 64 << 10
GROUP_TOTAL_BYTES = 8 << 20  # files past this many bytes in one look are parsed alone


@dataclass(frozen=True)
class Candidate:
    """A file about to be read: where its new lines start and how they are parsed."""

    path: str
    opener: Opener
    start: int
    first_line: int
    fmt: Format
    state: ParserState


@dataclass(frozen=True)
class _Part:
    data: bytes
    first_line: int
    ctx: Context
    parsed: Parsed


def groupable(fmt: Format, state: ParserState) -> bool:
    return fmt.name in GROUPABLE and state.header is None and set(state.extra) <= {"format_spec"}


class Preparsed:
    """The parts of one look's appends, parsed together, until each file's read takes its own."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, int], _Part] = {}

    def fill(self, candidates: list[Candidate], ctx: Context, block_bytes: int,
             max_line_bytes: int) -> None:  # fmt: skip
        """Parse the first block of each candidate's new lines, one block per format."""
        self._parts.clear()
        groups: dict[tuple[str, str | None, bool], list[tuple[Candidate, Segment]]] = {}
        # One part per path: a file moved away and draining keeps its old path, which a new
        # file may take, and a joint block's rollup is split by path.
        paths = Counter(c.path for c in candidates)
        total = 0
        for c in candidates:
            if paths[c.path] > 1 or not groupable(c.fmt, c.state):
                continue
            segment = _first_block(c, block_bytes, max_line_bytes)
            if segment is None or total + len(segment.data) > GROUP_TOTAL_BYTES:
                continue
            total += len(segment.data)
            key = (c.fmt.name, c.state.extra.get("format_spec"), segment.escapes)
            groups.setdefault(key, []).append((c, segment))
        for members in groups.values():
            if len(members) < 2:
                continue
            first = members[0][0]
            try:
                parts = parse_segments([s for _, s in members], first.fmt, first.state, ctx)
            except Exception as exc:  # each file is then parsed alone, where a bad line is isolated
                log.debug("parsing appends together failed", extra={"error": str(exc)})
                continue
            for (c, segment), parsed in zip(members, parts, strict=True):
                self._parts[(c.path, c.start)] = _Part(segment.data, c.first_line, ctx, parsed)

    def take(self, path: str, start: int, data: bytes | bytearray, first_line: int,
             ctx: Context) -> Parsed | None:  # fmt: skip
        """The part parsed from exactly these bytes of `path` at `start`, if any."""
        part = self._parts.pop((path, start), None)
        if part is None or part.ctx is not ctx or part.first_line != first_line:
            return None
        return part.parsed if part.data == data else None

    def clear(self) -> None:
        self._parts.clear()


def _first_block(c: Candidate, block_bytes: int, max_line_bytes: int) -> Segment | None:
    """The whole lines a read of `c` would parse first; None if they are not a plain block."""
    try:
        with c.opener() as fh:
            for block in read_blocks(fh, c.start, block_bytes=block_bytes,
                                     max_line_bytes=max_line_bytes,
                                     take_unterminated=False):  # fmt: skip
                if block.oversize or block.unterminated or not block.data \
                        or len(block.data) > GROUP_BYTES:  # fmt: skip
                    return None
                return Segment(c.path, bytes(block.data), block.start, c.first_line)
    except OSError:
        return None  # the read itself will say what is wrong
    return None
