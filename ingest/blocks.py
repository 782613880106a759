"""One block of a file: bytes -> lines -> parsed rows, rejects, 409 lines and the minute rollup.

Runs on the pipeline's parse thread; everything here is vectorized over the block (polars).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from conflictradar.ingest import endpoints, envelopes
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.lines import newline_positions, split_lines
from conflictradar.ingest.schema import empty, stray_times, time_problem
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store, minute_rollup
from conflictradar.ingest.timestamps import local_zone

RAW_LIMIT = 2048  # characters of a rejected line kept in `rejects.raw`


@dataclass(frozen=True)
class Context:
    """What every block of a run needs besides its bytes."""

    settings: Settings
    openapi: tuple[endpoints.OpenApiRoute, ...]
    folds: tuple[endpoints.Fold, ...]


def load_context(store: Store, settings: Settings) -> Context:
    routes = (
        endpoints.load_openapi(settings.endpoints.openapi) if settings.endpoints.openapi else []
    )
    return Context(settings, tuple(routes), store.endpoint_folds())


@dataclass
class Parsed:
    requests: pl.DataFrame
    minutes: pl.DataFrame
    folds: tuple[endpoints.Fold, ...]  # learned from this block, not yet recorded
    rejects: pl.DataFrame
    conflict_lines: pl.DataFrame
    lines: int
    skipped: int
    end: int  # byte offset after the last consumed line
    unterminated: bool
    last_line_start: int
    time_read: bool = False  # some rows carry the time they were read, not a logged one


def concat_parsed(parts: Sequence[Parsed]) -> Parsed:
    """Consecutive parsed pieces of one file as one (the rows of all, the position of the last)."""
    if len(parts) == 1:
        return parts[0]

    def frames(name: str) -> pl.DataFrame:
        return pl.concat([getattr(p, name) for p in parts], how="vertical_relaxed")

    folds: list[endpoints.Fold] = []
    for part in parts:
        folds += [f for f in part.folds if f not in folds]
    last = parts[-1]
    return Parsed(
        requests=frames("requests"),
        minutes=frames("minutes"),
        folds=tuple(folds),
        rejects=frames("rejects"),
        conflict_lines=frames("conflict_lines"),
        lines=sum(p.lines for p in parts),
        skipped=sum(p.skipped for p in parts),
        end=last.end,
        unterminated=last.unterminated,
        last_line_start=last.last_line_start,
        time_read=any(p.time_read for p in parts),
    )


def parse_block(
    data: bytes | bytearray,
    start: int,
    first_line: int,
    unterminated: bool,
    oversize: Sequence[tuple[int, int]],
    fmt: Format,
    envelope: str | None,
    state: ParserState,
    ctx: Context,
    path: str,
    final: bool,
) -> Parsed:
    """Parse one block of whole lines into request rows, reject rows and 409 raw lines."""
    nl_ends = newline_positions(data)
    text = split_lines(data, nl_ends)
    count = text.len()
    consumed = count
    rows = pl.DataFrame({"text": text}).with_row_index("row")
    if envelope:
        unwrapped = envelopes.unwrap(envelope, text, final=final)
        consumed = unwrapped.consumed
        rows = unwrapped.frame.select(pl.col("row").cast(pl.UInt32), "text", pl.col("envelope_ts"))
    texts = rows["text"]
    with local_zone(ctx.settings.ingest.timezone):
        parsed = fmt.parse(texts, state) if rows.height else empty()
    if envelope and "envelope_ts" in rows.columns:
        parsed = parsed.with_columns(pl.coalesce("ts", rows["envelope_ts"]).alias("ts"))
    # A format whose lines may carry no time (bare uvicorn) leaves ts null on parsed lines:
    # they take the time they were read, and the file's format says so (`TIME_READ`).
    untimed = parsed["ts"].is_null() & parsed["_reject"].is_null() & ~parsed["_skip"]
    time_read = bool(untimed.any())
    if time_read:
        parsed = parsed.with_columns(pl.col("ts").fill_null(datetime.now(UTC)))
    # The timestamp validity rule once more, over every format's output: `finish` applies it,
    # but an envelope's time fills in here, and a parser that skips `finish` must not slip by.
    reject = parsed.select(pl.coalesce(pl.col("_reject"), time_problem(pl.col("ts")))).to_series()
    # Blank lines are counted as skipped, never rejected; a cut line is never skipped.
    skip = parsed["_skip"] | (texts.str.strip_chars_start().str.len_bytes() == 0)
    if oversize:
        idx = [i for i, _ in oversize]
        reasons = [f"line of {n} bytes is longer than the limit; cut" for _, n in oversize]
        over = pl.Series("_over", [None] * len(reject), dtype=pl.String).scatter(idx, reasons)
        reject = over.fill_null(reject)
        skip = skip & over.is_null()
    line_no = rows["row"].cast(pl.Int64) + first_line
    reject = reject.fill_null(stray_times(parsed["ts"], reject.is_null() & ~skip))
    ok = reject.is_null() & ~skip
    all_ok = bool(ok.all())
    good = parsed if all_ok else parsed.filter(ok)
    requests = good.with_columns(
        (line_no if all_ok else line_no.filter(ok)).alias("line"),
        pl.lit(path).alias("file"),
        pl.lit(fmt.name).alias("format"),
        endpoints.template(pl.col("path"), pl.col("route"), ctx.openapi, ctx.folds).alias(
            "endpoint"
        ),
    ).select(REQUEST_COLUMNS)
    bad = reject.is_not_null() & ~skip
    rejects = pl.DataFrame(
        {
            "file": pl.Series([path] * int(bad.sum()), dtype=pl.String),
            "line": line_no.filter(bad),
            "reason": reject.filter(bad),
            "raw": texts.filter(bad).str.slice(0, RAW_LIMIT),
        }
    )
    # A high-cardinality position seen in this block is folded before anything is stored, so
    # the rows need no rewriting later. The minute rollup holds every distinct endpoint of the
    # block in far fewer rows than the block (learning from all rows cost ~0.15 s per 2M).
    minutes = minute_rollup(requests)
    learned = endpoints.learn_folds(
        minutes["endpoint"], ctx.settings.endpoints.fold_threshold, ctx.folds
    )
    if learned:
        requests = requests.with_columns(
            endpoints.apply_folds(pl.col("endpoint"), learned).alias("endpoint")
        )
        minutes = minute_rollup(requests)
    is_409 = requests["status"] == 409
    conflict_lines = pl.DataFrame(
        {
            "file": pl.Series([path] * int(is_409.sum()), dtype=pl.String),
            "line": requests["line"].filter(is_409),
            "ts": requests["ts"].filter(is_409),
            "raw": (texts if all_ok else texts.filter(ok)).filter(is_409),
        }
    )
    if consumed == count:
        end = start + len(data)
    else:
        end = start + (int(nl_ends[consumed - 1]) + 1 if consumed else 0)
    last_start = start + (int(nl_ends[count - 2]) + 1 if count >= 2 else 0)
    return Parsed(
        requests=requests,
        minutes=minutes,
        folds=tuple(learned),
        rejects=rejects,
        conflict_lines=conflict_lines,
        lines=consumed,
        skipped=int(skip.sum()),
        end=end,
        unterminated=unterminated and consumed == count,
        last_line_start=last_start,
        time_read=time_read,
    )
