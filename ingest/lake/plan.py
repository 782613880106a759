"""From input paths to work: each file's identity, format, and the byte ranges still to store.

Runs on the driver, which sees the same paths as the workers (a shared folder, NFS). It reads
only a file's head (identity, format detection) and a few bytes around each split point.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conflictradar.ingest import detect, envelopes
from conflictradar.ingest.errors import InputError
from conflictradar.ingest.formats import ParserState, get_format, names
from conflictradar.ingest.lake.manifest import KnownSource, match_source, new_source_id
from conflictradar.ingest.lines import split_lines
from conflictradar.ingest.sources import MIN_CONTENT_MATCH, Source, fingerprint, inspect, open_bytes

DETECT_BYTES = 1 << 20
# Split points look this far for the next line start (longer lines move the split further).
SCAN_BYTES = 1 << 16


@dataclass(frozen=True)
class Work:
    """One source's bytes to store in this run: `ranges` in order, from `first_line` on."""

    source: Source
    sid: str
    format_spec: str
    format: str
    envelope: str | None
    ranges: tuple[tuple[int, int], ...]  # [start, end); end None-free: plain files end at a newline
    first_line: int
    to_eof: bool  # compressed: the one range runs to the end of the content, whatever its size

    @property
    def fp_len(self) -> int:
        return len(self.source.head)

    @property
    def fp_hash(self) -> str:
        return fingerprint(self.source.head)


@dataclass(frozen=True)
class Skipped:
    path: str
    status: str  # unchanged | unrecognized | error
    format: str | None
    message: str


def _first_block(source: Source) -> bytes:
    with open_bytes(source.path, source.compressed) as fh:
        data = fh.read(DETECT_BYTES)
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut > 0 else data


Choice = tuple[str | None, str | None, bool]  # (format spec, envelope, splittable)


def choose_format(source: Source, known_spec: str | None, known_envelope: str | None,
                  forced: str | None) -> Choice:  # fmt: skip
    """(format spec, envelope, splittable) as the one-machine ingest would choose them; runs
    on a worker (detection tries every format on the file's head).

    A file can be split into byte ranges only when its lines parse independently: no envelope
    (partial container lines are joined across lines) and no header state (w3c `#Fields`).
    """
    head = split_lines(_first_block(source))
    if known_spec and forced is None:
        spec, env = known_spec, known_envelope
    elif forced is not None:
        spec = forced
        env = envelopes.detect_envelope(detect.sample_of(head)) if head.len() else None
    else:
        found = detect.detect(head)
        if found.format is None:
            return None, found.envelope, False
        spec, env = found.format.name, found.envelope
    state = ParserState()
    if env is None and head.len():
        get_format(spec).parse(head.head(detect.SAMPLE_LINES), state)
    splittable = env is None and state.header is None
    return spec, env, splittable


def _line_start_after(path: Path, pos: int, limit: int) -> int:
    """The first line start at or after `pos` (`limit` if none before it)."""
    with path.open("rb") as fh:
        fh.seek(pos - 1)
        at = pos - 1
        while at < limit:
            chunk = fh.read(SCAN_BYTES)
            if not chunk:
                return limit
            nl = chunk.find(b"\n")
            if nl >= 0:
                return min(at + nl + 1, limit)
            at += len(chunk)
    return limit


def _terminated_end(path: Path, size: int) -> int:
    """Offset after the file's last newline: a final line without one may still be written."""
    with path.open("rb") as fh:
        pos = size
        while pos > 0:
            step = min(SCAN_BYTES, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                return pos - step + nl + 1
            pos -= step
    return 0


def split(path: Path, start: int, end: int, split_bytes: int) -> list[tuple[int, int]]:
    """[start, end) cut near every `split_bytes`, each cut moved to the next line start."""
    out: list[tuple[int, int]] = []
    lo = start
    while lo < end:
        target = lo + split_bytes
        hi = end if target >= end else _line_start_after(path, target, end)
        out.append((lo, hi))
        lo = hi
    return out


def plan_source(
    source: Source, known: KnownSource | None, taken: Sequence[str], choice: Choice,
    split_bytes: int,
) -> Work | Skipped:  # fmt: skip
    """What is left to store of one file, given its format `choice`."""
    path = str(source.path)
    if not source.head:
        return Skipped(path, "unchanged", None, "empty file")
    spec, env, splittable = choice
    if known is not None and known.format_spec and spec == known.format_spec:
        env = known.envelope
    if spec is None:
        return Skipped(
            path, "unrecognized", None,
            f"{path}: format not recognised; tried {', '.join(names())}"
            " (use --format NAME or --format nginx:'<log_format>')",
        )  # fmt: skip
    fmt = get_format(spec).name
    sid = known.source if known is not None else new_source_id(source, taken)
    start = known.covered if known is not None else 0
    first_line = (known.lines if known is not None else 0) + 1
    if source.compressed:
        # A .gz is complete and cannot be split: one range from what is stored to its end.
        return Work(source, sid, spec, fmt, env, ((start, -1),), first_line, to_eof=True)
    end = _terminated_end(source.path, source.size)
    if end <= start:
        return Skipped(path, "unchanged", fmt, "")
    size = split_bytes if splittable else max(end - start, 1)
    return Work(source, sid, spec, fmt, env, tuple(split(source.path, start, end, size)),
                first_line, to_eof=False)  # fmt: skip


def inspect_all(paths: Sequence[Path]) -> tuple[list[Source], list[Skipped]]:
    sources, skipped = [], []
    for p in paths:
        try:
            sources.append(inspect(p))
        except InputError as exc:
            skipped.append(Skipped(str(os.path.abspath(p)), "error", None, str(exc)))
    return sources, skipped


def plan_round(
    sources: Sequence[Source],
    known: dict[str, KnownSource],
    choices: dict[str, Choice],
    split_bytes: int,
) -> tuple[list[Work | Skipped], list[Source]]:
    """Work for at most one file per source identity; files with the same content as one
    planned here (a rotated copy and its .gz) wait for the next round, which sees what this
    round stored."""
    out: list[Work | Skipped] = []
    later: list[Source] = []
    claimed: set[str] = set()
    heads: list[bytes] = []  # content starts of the new sources planned in this round
    taken = list(known)
    # Plain files first: they can be split, and a .gz of the same content then adds nothing.
    for source in sorted(sources, key=lambda s: s.compressed):
        match = match_source(source, known)
        if (match is not None and match.source in claimed) or (
            match is None and any(_same_start(source.head, h) for h in heads)
        ):
            later.append(source)
            continue
        item = plan_source(source, match, taken, choices[str(source.path)], split_bytes)
        if isinstance(item, Work):
            claimed.add(item.sid)
            taken.append(item.sid)
            if match is None:
                heads.append(source.head)
        out.append(item)
    order = {str(s.path): i for i, s in enumerate(sources)}
    out.sort(key=lambda w: order.get(w.path if isinstance(w, Skipped) else str(w.source.path), 0))
    return out, later


def _same_start(a: bytes, b: bytes) -> bool:
    """Whether two heads start alike enough to be the same content (`ingest.sources`' rule)."""
    n = min(len(a), len(b))
    return n >= MIN_CONTENT_MATCH and a[:n] == b[:n]
