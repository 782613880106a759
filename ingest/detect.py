"""Format auto-detection: try every format on a sample of a file, keep the one that parses most.

Envelopes (Docker json-file, Kubernetes CRI, docker-compose prefixes) are recognised first and
unwrapped, so the inner format is detected on the lines the gateway wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ingest import envelopes
from ingest.formats import Format, ParserState, all_formats

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
    best: Format | None = None
    best_clean = 0
    best_skip = 0
    for fmt in formats:
        try:
            parsed = fmt.parse(inner, ParserState())
        except Exception:  # a parser bug must not stop detection; it just cannot win
            continue
        clean = int((parsed["_reject"].is_null() & ~parsed["_skip"]).sum())
        skipped = int(parsed["_skip"].sum())
        if clean > best_clean:
            best, best_clean, best_skip = fmt, clean, skipped
    considered = inner.len() - best_skip
    if best is None or best_clean < max(1, MIN_SHARE * considered):
        return Detection(None, envelope, best_clean, inner.len(), tried)
    return Detection(best, envelope, best_clean, inner.len(), tried)
