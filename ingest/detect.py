"""Format auto-detection: try every format on a sample of a file, keep the one that parses most.

Envelopes (Docker json-file, Kubernetes CRI, docker-compose prefixes) are recognised first and
unwrapped, so the inner format is detected on the lines the gateway wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from conflictradar.ingest import envelopes
from conflictradar.ingest.formats import Format, ParserState, all_formats
from conflictradar.ingest.schema import TIME_REASONS

SAMPLE_LINES = 2000
# The winner must parse at least this share of the sample's non-blank, non-skipped lines.
MIN_SHARE = 0.2


@dataclass(frozen=True)
class Detection:
    format: Format | None
    envelope: str | None
    clean: int  # lines of the sample the chosen format parsed
    sample: int  # non-blank lines in the sample
    tried: tuple[str, ...]


def sample_of(lines: pl.Series) -> pl.Series:
    nonblank = lines.filter(lines.str.strip_chars() != "")
    return nonblank.head(SAMPLE_LINES)


def detect(lines: pl.Series) -> Detection:
    """Choose envelope and format for a file from its first lines."""
    sample = sample_of(lines)
    envelope = envelopes.detect_envelope(sample) if sample.len() else None
    inner = sample
    if envelope:
        inner = envelopes.unwrap(envelope, sample, final=True).frame["text"]
        inner = inner.filter(inner.str.strip_chars() != "")
    formats = all_formats()
    tried = tuple(f.name for f in formats)
    starts_json = inner.str.starts_with("{")
    families = {"any"}
    if starts_json.any():
        families.add("json")
    if not starts_json.all():
        families.add("text")
    best: Format | None = None
    best_score = (0, 0)
    # A format that parses nothing can still be the file's when most lines are its directives
    # (`#Fields`); skipping other lines wins nothing (uvicorn skips every non-request line).
    by_directives: Format | None = None
    most_directives = 0
    for fmt in formats:
        if fmt.family not in families:
            continue
        try:
            parsed = fmt.parse(inner, ParserState())
        except Exception:  # a parser bug must not stop detection; it just cannot win
            continue
        # A line refused only for its impossible time is still this format's line.
        fits = parsed["_reject"].is_null() | parsed["_reject"].is_in(TIME_REASONS)
        clean = int((fits & ~parsed["_skip"]).sum())
        skipped = int(parsed["_skip"].sum())
        if clean and (clean, skipped) > best_score:
            best, best_score = fmt, (clean, skipped)
        if not clean:
            directives = int((parsed["_skip"] & inner.str.starts_with("#")).sum())
            if directives > most_directives:
                by_directives, most_directives = fmt, directives
        if clean == inner.len():
            break  # every line parsed: no later format can score higher, and ties go first
    clean, skipped = best_score
    considered = inner.len() - skipped
    if best is not None and clean >= MIN_SHARE * considered:
        return Detection(best, envelope, clean, inner.len(), tried)
    # A file whose lines are mostly the format's own directives (a w3c file with `#Fields`
    # headers and one malformed record) is still that format: its records become rejects.
    if by_directives is not None and most_directives >= 0.5 * inner.len():
        return Detection(by_directives, envelope, 0, inner.len(), tried)
    return Detection(None, envelope, clean, inner.len(), tried)
