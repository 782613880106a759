"""The lake's manifest: which bytes of which source are stored, one JSON record per byte range.

A source is known by its content, not its name: the record keeps the fingerprint of the file's
first bytes (as the one-machine `files` table does), so a renamed, moved or compressed copy of a
file is recognised and only bytes beyond what is stored are read. A range's record is written
after all its Parquet files are in place: a range without a record is not stored, and a re-run
reads it again under the same names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conflictradar.ingest.lake import layout
from conflictradar.ingest.rows import FileRecord
from conflictradar.ingest.sources import Source, find_record


@dataclass(frozen=True)
class Unit:
    """One stored byte range [start, end) of one source (offsets in the decompressed content)."""

    source: str  # the source's id (stable across renames)
    path: str  # the path it was read from
    dev: int
    inode: int
    compressed: bool
    fp_len: int
    fp_hash: str
    start: int
    end: int
    first_line: int  # 1-based number of the range's first line in the source
    lines: int
    parsed: int
    rejected: int
    skipped: int
    conflicts: int  # 409 lines
    format: str
    format_spec: str
    envelope: str | None
    hours: tuple[str, ...]  # hour keys of the rows stored
    files: tuple[str, ...]  # relative paths of its Parquet files
    folds: tuple[tuple[str, int], ...] = ()  # endpoint folds it learned
    time_range: tuple[str, str] | None = None  # earliest and latest ts stored (ISO)

    @property
    def name(self) -> str:
        return layout.unit_name(self.source, self.start, self.end)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Unit:
        data = dict(raw)
        for key in ("hours", "files"):
            data[key] = tuple(data.get(key) or ())  # type: ignore[arg-type]
        data["folds"] = tuple((str(p), int(k)) for p, k in data.get("folds") or ())  # type: ignore[attr-defined]
        tr = data.get("time_range")
        data["time_range"] = (str(tr[0]), str(tr[1])) if tr else None  # type: ignore[index]
        return cls(**data)  # type: ignore[arg-type]


def unit_record(lake: Path, unit: Unit) -> Path:
    return lake / layout.UNITS / f"{unit.name}.json"


def commit_unit(lake: Path, unit: Unit) -> None:
    """Record a range as stored; called once all its files are renamed into place."""
    layout.write_json(unit.to_json(), unit_record(lake, unit))


def load_units(lake: Path) -> list[Unit]:
    folder = lake / layout.UNITS
    if not folder.is_dir():
        return []
    out = [Unit.from_json(layout.read_json(p)) for p in sorted(folder.glob("*.json"))]
    return sorted(out, key=lambda u: (u.source, u.start))


@dataclass
class KnownSource:
    """What the manifest holds of one source: its ranges, in order."""

    source: str
    units: list[Unit] = field(default_factory=list)

    @property
    def covered(self) -> int:
        """End of the stored prefix [0, covered): the offset a new run resumes at."""
        end = 0
        for u in sorted(self.units, key=lambda u: u.start):
            if u.start > end:
                break
            end = max(end, u.end)
        return end

    @property
    def lines(self) -> int:
        """Lines in the stored prefix."""
        end, total = 0, 0
        for u in sorted(self.units, key=lambda u: u.start):
            if u.start > end:
                break
            if u.end > end:
                end, total = u.end, total + u.lines
        return total

    @property
    def format_spec(self) -> str | None:
        return self.units[0].format_spec if self.units else None

    @property
    def envelope(self) -> str | None:
        return self.units[0].envelope if self.units else None


def known_sources(units: Iterable[Unit]) -> dict[str, KnownSource]:
    out: dict[str, KnownSource] = {}
    for u in units:
        out.setdefault(u.source, KnownSource(u.source)).units.append(u)
    return out


def _record(i: int, known: KnownSource) -> FileRecord:
    """The known source as a one-machine file record, for the same identity matching."""
    last = max(known.units, key=lambda u: u.end)
    widest = max(known.units, key=lambda u: u.fp_len)
    return FileRecord(
        file_id=i, path=last.path, dev=last.dev, inode=last.inode, fp_len=widest.fp_len,
        fp_hash=widest.fp_hash, read_offset=known.covered, lines=known.lines, tail_start=None,
        tail_line=None, format=last.format, envelope=last.envelope, parser_state=None,
        compressed=last.compressed,
    )  # fmt: skip


def match_source(source: Source, known: dict[str, KnownSource]) -> KnownSource | None:
    """The stored source this file continues (same content start), by `ingest.sources`' rules;
    a plain file now shorter than what is stored is a new generation, not a continuation."""
    entries = list(known.values())
    records = [_record(i, k) for i, k in enumerate(entries)]
    rec = find_record(source, records)
    if rec is None:
        return None
    match = entries[rec.file_id]
    if not source.compressed and source.size < match.covered:
        return None
    return match


def new_source_id(source: Source, taken: Sequence[str]) -> str:
    """A fresh id from the content's first bytes (a truncated file's new generation, which
    starts the same, gets a suffix)."""
    base = hashlib.sha256(source.head).hexdigest()[:16]
    sid, n = base, 1
    while sid in taken:
        n += 1
        sid = f"{base}g{n}"
    return sid
