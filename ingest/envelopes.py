"""Container envelopes (tail -> parse): unwrap Docker json-file, Kubernetes CRI and compose lines.

A container runtime wraps each line the gateway wrote: Docker json-file as
`{"log":"<line>\\n","stream":"stdout","time":"..."}`, Kubernetes CRI as
`<RFC 3339 time> stdout F <line>`, docker-compose as `name  | <line>`. Long lines arrive in pieces
(CRI `P` chunks up to the `F` one; json-file chunks whose `log` lacks the final newline); the
pieces of one stream are joined back into the line. A line that does not match the envelope
passes through unchanged, so it is still parsed or rejected, never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import polars as pl

from conflictradar.ingest.formats.jsonpaths import extract_json
from conflictradar.ingest.schema import UTC_TS
from conflictradar.ingest.timestamps import parse_iso

ENVELOPES = ("docker", "cri", "compose")

# Share of a sample's non-blank lines that must carry the envelope for it to be detected.
MAJORITY = 0.6

_CRI = (
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
    r" (stdout|stderr) ([PF])(?::\S*)?(?: (.*))?$"
)
_ANSI = r"(?:\x1b\[[0-9;]*m)*"
_COMPOSE = rf"^{_ANSI}([A-Za-z][\w.-]*) +\|{_ANSI}(?: (.*))?$"
_DOCKER_STREAM = r'"stream"\s*:\s*"(?:stdout|stderr)"'
_DOCKER_TEXT = r'"(?:log|message)"\s*:\s*"'


@dataclass(frozen=True)
class Unwrapped:
    """Inner lines: `text`, `envelope_ts` (UTC or null) and `row`, the index of the input line
    that ends the record. `consumed` input lines are fully used; the rest (an unfinished chain of
    pieces when `final` is False) should be offered again with the lines that follow."""

    frame: pl.DataFrame
    consumed: int


def _is_docker(text: pl.Series) -> pl.Series:
    return (
        text.str.contains(r"^\s*\{")
        & text.str.contains(_DOCKER_STREAM)
        & text.str.contains(_DOCKER_TEXT)
    )


def detect_envelope(lines: pl.Series) -> str | None:
    """The envelope a clear majority of the sample's non-blank lines carry, or None."""
    text = lines.cast(pl.String).fill_null("")
    text = text.filter(text.str.strip_chars() != "")
    if text.is_empty():
        return None
    tests = {
        "docker": _is_docker(text),
        "cri": text.str.contains(_CRI),
        "compose": text.str.contains(_COMPOSE),
    }
    for name, hit in tests.items():
        if hit.sum() >= MAJORITY * len(text):
            return name
    return None


def unwrap(name: str, lines: pl.Series, final: bool) -> Unwrapped:
    """Inner lines of `lines` in envelope `name` (one of ENVELOPES)."""
    text = lines.cast(pl.String).fill_null("")
    if name == "docker":
        pieces = _docker(text)
    elif name == "cri":
        pieces = _cri(text)
    elif name == "compose":
        pieces = _compose(text)
    else:
        raise ValueError(f"unknown envelope {name!r}; choose one of {', '.join(ENVELOPES)}")
    return _assemble(pieces, final)


def _compose(text: pl.Series) -> pl.DataFrame:
    m = pl.col("m").struct
    return (
        pl.DataFrame({"line": text})
        .with_columns(pl.col("line").str.extract_groups(_COMPOSE).alias("m"))
        .select(
            pl.when(m.field("1").is_not_null())
            .then(m.field("2").fill_null(""))
            .otherwise(pl.col("line"))
            .alias("text"),
            pl.lit(None, UTC_TS).alias("envelope_ts"),
            pl.lit(None, pl.String).alias("stream"),
            pl.lit(False).alias("partial"),
        )
    )


def _cri(text: pl.Series) -> pl.DataFrame:
    frame = pl.DataFrame({"line": text}).with_columns(
        pl.col("line").str.extract_groups(_CRI).alias("m")
    )
    m = pl.col("m").struct
    matched = m.field("1").is_not_null()
    return frame.select(
        pl.when(matched).then(m.field("4").fill_null("")).otherwise(pl.col("line")).alias("text"),
        parse_iso(m.field("1")).alias("envelope_ts"),
        m.field("2").alias("stream"),
        (m.field("3") == "P").fill_null(False).alias("partial"),
    )


def _docker(text: pl.Series) -> pl.DataFrame:
    keys = ["log", "message", "stream", "time"]
    got = extract_json(text, keys)
    # A record the JSON reader refuses (a stray brace after it) is still read key by key.
    broken = (got["_json"] != "object") & _is_docker(text)
    if broken.any():
        field = r'"{}"\s*:\s*"((?:[^"\\]|\\.)*)"'
        raw = text.filter(broken)
        rebuilt = pl.select(
            pl.concat_str(
                [pl.lit("{")]
                + [
                    pl.lit(f'"{key}":"')
                    + raw.str.extract(field.format(key), 1).fill_null("")
                    + pl.lit('",')
                    for key in keys
                ]
                + [pl.lit('"_":0}')]
            )
        ).to_series()
        fixed = extract_json(rebuilt, keys).select(
            pl.col(k).replace("", None).alias(k) for k in keys
        )
        at = broken.arg_true()
        got = got.with_columns(got[k].scatter(at, fixed[k]) for k in keys)
    log, message = pl.col("log"), pl.col("message")
    matched = pl.col("stream").is_in(["stdout", "stderr"]) & (
        log.is_not_null() | message.is_not_null()
    )
    inner = pl.coalesce(log, message)
    return got.select(
        pl.when(matched)
        .then(inner.str.replace(r"\r?\n$", ""))
        .otherwise(pl.lit(text))
        .alias("text"),
        pl.when(matched).then(parse_iso(pl.col("time"))).alias("envelope_ts"),
        pl.when(matched).then(pl.col("stream")).alias("stream"),
        # json-file cuts long lines into pieces; every piece but the last lacks the newline.
        (matched & log.is_not_null() & ~log.str.ends_with("\n")).fill_null(False).alias("partial"),
    )


def _assemble(pieces: pl.DataFrame, final: bool) -> Unwrapped:
    """Join the pieces of each stream's long lines; decide how many input lines are consumed."""
    n = pieces.height
    frame = pieces.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    out_columns = ["text", "envelope_ts", "row"]
    if not frame["partial"].any():
        return Unwrapped(frame.select(out_columns), n)
    # Pieces chain within their stream: a chain ends at the first piece that is not partial.
    end = ~pl.col("partial")
    chain = (end.cast(pl.Int64).cum_sum() - end.cast(pl.Int64)).over("stream")
    key = (
        pl.when(pl.col("stream").is_not_null())
        .then(pl.concat_str([pl.col("stream"), pl.lit(":"), chain.cast(pl.String)]))
        .otherwise(pl.concat_str([pl.lit("#"), pl.col("row").cast(pl.String)]))
    )
    records = (
        frame.with_columns(key.alias("_key"))
        .group_by("_key", maintain_order=True)
        .agg(
            pl.col("text").str.join(""),
            pl.col("envelope_ts").first(),
            pl.col("row").min().alias("start"),
            pl.col("row").max().alias("row"),
            (~pl.col("partial").last()).alias("complete"),
        )
        .sort("row")
    )
    consumed = n
    if not final:
        # Stop before the first unfinished chain, and before any record that spans that point,
        # so the lines offered again hold every piece of the records they complete.
        unfinished = records.filter(~pl.col("complete"))
        if unfinished.height:
            consumed = cast(int, unfinished["start"].min())
            while True:
                lowest = cast(int, records.filter(pl.col("row") >= consumed)["start"].min())
                if lowest >= consumed:
                    break
                consumed = lowest
            records = records.filter(pl.col("row") < consumed)
    return Unwrapped(records.select(out_columns), consumed)
