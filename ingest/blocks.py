"""One block of a file: bytes -> lines -> parsed rows, rejects, 409 lines and the minute rollup.

Runs on the pipeline's parse thread; everything here is vectorized over the block (polars).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from conflictradar.ingest import endpoints, envelopes, plans
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.lines import newline_positions, split_lines
from conflictradar.ingest.plans import Plan
from conflictradar.ingest.rows import minute_query
from conflictradar.ingest.schema import (
    STRAY,
    STRAY_SPAN_US,
    empty,
    epoch_us,
    latest_allowed,
    stray_glitch,
    time_rule,
)
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
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
    with local_zone(ctx.settings.ingest.timezone):
        parsed = fmt.parse(rows["text"], state) if rows.height else empty()
    # What varies per block goes in as literal columns, so the plan is built once (ingest.plans).
    now = datetime.now(UTC)
    frame = parsed.hstack(rows).with_columns(
        pl.lit(epoch_us(now), pl.Int64).alias("_now"),
        pl.lit(latest_allowed(now), pl.Int64).alias("_latest"),
        pl.lit(first_line, pl.Int64).alias("_line0"),
        pl.lit(path, pl.String).alias("file"),
        pl.lit(fmt.name, pl.String).alias("format"),
    )
    if oversize:
        reasons = [f"line of {n} bytes is longer than the limit; cut" for _, n in oversize]
        over = pl.Series("_over", [None] * frame.height, dtype=pl.String)
        frame = frame.with_columns(over.scatter([i for i, _ in oversize], reasons))
    out = _judge(frame, ctx, bool(envelope), bool(oversize), by_file=False)
    time_read = bool(out["_untimed"].any())
    requests, rejects, conflict_lines = _outputs(out)
    # A high-cardinality position seen in this block is folded before anything is stored, so
    # the rows need no rewriting later. The minute rollup holds every distinct endpoint of the
    # block in far fewer rows than the block (learning from all rows cost ~0.15 s per 2M).
    minutes = _rollup(requests)
    learned = endpoints.learn_folds(
        minutes["endpoint"], ctx.settings.endpoints.fold_threshold, ctx.folds
    )
    if learned:
        requests = requests.with_columns(
            endpoints.apply_folds(pl.col("endpoint"), learned).alias("endpoint")
        )
        minutes = _rollup(requests)
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
        skipped=int(out["_skip"].sum()),
        end=end,
        unterminated=unterminated and consumed == count,
        last_line_start=last_start,
        time_read=time_read,
    )


@dataclass(frozen=True)
class Segment:
    """One file's small append: one or more whole lines (ending in a newline) from `start`."""

    path: str
    data: bytes
    start: int
    first_line: int

    @property
    def escapes(self) -> bool:
        """Whether a backslash is among the bytes: the CLF parser decides per block whether to
        undo escaped quotes, which changes lines holding its stand-in characters, so segments
        parsed together must agree on this."""
        return b"\\" in self.data


def parse_segments(
    segments: Sequence[Segment], fmt: Format, state: ParserState, ctx: Context
) -> list[Parsed]:
    """Several files' appends in one format parsed as one block: what `parse_block` gives for
    each alone (its lines, rows, rejects, 409 lines, rollup, position), for the fixed cost of
    one. A watcher following many files paid that cost, ~5 ms, for every file on every look.

    For formats whose lines parse independently of each other and of `state` (ingest.preparse
    decides which), without an envelope, and segments that agree on `escapes`.
    """
    data = b"".join(s.data for s in segments)
    nl_ends = newline_positions(data)
    text = split_lines(data, nl_ends)
    counts = np.array([s.data.count(b"\n") for s in segments], dtype=np.int64)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    which = pl.Series("_seg", np.repeat(np.arange(len(segments), dtype=np.uint32), counts))
    rows = pl.DataFrame({"text": text}).with_row_index("row")
    with local_zone(ctx.settings.ingest.timezone):
        parsed = fmt.parse(rows["text"], state)
    now = datetime.now(UTC)
    line0 = np.array([s.first_line for s in segments], dtype=np.int64) - firsts
    frame = parsed.hstack(rows).with_columns(
        pl.lit(epoch_us(now), pl.Int64).alias("_now"),
        pl.lit(latest_allowed(now), pl.Int64).alias("_latest"),
        pl.Series("_line0", line0).gather(which),
        pl.Series("file", [s.path for s in segments], dtype=pl.String).gather(which),
        pl.lit(fmt.name, pl.String).alias("format"),
        which,
    )
    out = _judge(frame, ctx, envelope=False, oversize=False, by_file=True)
    requests, rejects, conflict_lines = _outputs(out, "_seg")
    minutes = _rollup(requests.drop("_seg"))
    # A position that is high-cardinality over these files' appends together is folded as in
    # one file's block; every part carries the folds, and the first read records them.
    learned = tuple(endpoints.learn_folds(minutes["endpoint"],
                                          ctx.settings.endpoints.fold_threshold, ctx.folds))  # fmt: skip
    if learned:
        requests = requests.with_columns(
            endpoints.apply_folds(pl.col("endpoint"), learned).alias("endpoint")
        )
        minutes = _rollup(requests.drop("_seg"))
    flags = out.select(pl.col("_skip", "_untimed").fill_null(False).cast(pl.Int64)).to_numpy()
    skipped, untimed = np.add.reduceat(flags, firsts).T
    parts = [_by_segment(f, "_seg", len(segments)) for f in (requests, rejects, conflict_lines)]
    by_file = minutes.partition_by("file", as_dict=True)
    found = []
    offset = 0
    for i, seg in enumerate(segments):
        n = int(counts[i])
        last = int(nl_ends[firsts[i] + n - 2]) + 1 - offset if n >= 2 else 0
        found.append(Parsed(
            requests=parts[0][i], minutes=by_file.get((seg.path,), minutes.clear()), folds=learned,
            rejects=parts[1][i], conflict_lines=parts[2][i], lines=n,
            skipped=int(skipped[i]), end=seg.start + len(seg.data), unterminated=False,
            last_line_start=seg.start + last, time_read=bool(untimed[i]),
        ))  # fmt: skip
        offset += len(seg.data)
    return found


def _by_segment(frame: pl.DataFrame, key: str, n: int) -> list[pl.DataFrame]:
    """`frame`'s rows split by the segment number in `key` (0..n-1), without that column."""
    parts = frame.partition_by(key, as_dict=True, include_key=False, maintain_order=True)
    empty_part = frame.clear().drop(key)
    return [parts.get((i,), empty_part) for i in range(n)]


def _judge(frame: pl.DataFrame, ctx: Context, envelope: bool, oversize: bool, by_file: bool
           ) -> pl.DataFrame:  # fmt: skip
    """The block plan over a parsed block's frame, and the stray-time check when its times span
    far enough to hold one."""
    large = frame.height >= endpoints.WHOLE_PATH_ROWS
    plan = _block_plan(envelope, oversize, ctx.openapi, ctx.folds, by_file, large)
    out = plans.collect(plan.apply(frame.lazy()), frame.height, streaming=False)
    if out.height and (out["_span"].max() or 0) > STRAY_SPAN_US:  # type: ignore[operator]
        out = plans.collect(STRAY_PLANS[by_file].apply(out.lazy()), out.height, streaming=False)
    return out


def _outputs(out: pl.DataFrame, *extra: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A judged block's request rows, rejects and 409 raw lines (with the `extra` columns)."""
    ok = out["_ok"]
    requests = (out if ok.all() else out.filter(ok)).select(*REQUEST_COLUMNS, *extra)
    bad = out["_bad"]
    reject_columns = ["file", "line", pl.col("_reason").alias("reason"),
                      pl.col("text").str.slice(0, RAW_LIMIT).alias("raw"), *extra]  # fmt: skip
    rejects = (
        out.filter(bad).select(reject_columns) if bad.any() else out.clear().select(reject_columns)
    )
    conflict_lines = out.filter(ok & (out["status"] == 409)).select(
        "file", "line", "ts", pl.col("text").alias("raw"), *extra
    )
    return requests, rejects, conflict_lines


def _rollup(requests: pl.DataFrame) -> pl.DataFrame:
    return plans.collect(minute_query(requests.lazy()), requests.height, streaming=False)


@functools.lru_cache(maxsize=32)
def _block_plan(
    envelope: bool,
    oversize: bool,
    openapi: tuple[endpoints.OpenApiRoute, ...],
    folds: tuple[endpoints.Fold, ...],
    by_file: bool = False,
    large: bool = True,
) -> Plan:
    """What parse_block computes over a parsed block, as one lazy query (one collect for a block
    instead of ~30 eager operations; each costs more than its work on a watcher's small block).

    Input: the parser's columns, `row`/`text` (and `envelope_ts`) of the lines, `_over` (the
    reject reasons of cut lines) and the literal columns parse_block adds. Output adds `line`,
    `endpoint`, `_reason` (why a line is rejected), `_skip`, `_ok`, `_bad` and `_untimed`.
    `by_file`: the block holds several files' lines (ingest.segments); `_span` is each file's.
    `large`: a block of at least `endpoints.WHOLE_PATH_ROWS` rows (how paths are templated).
    """
    ts = pl.col("ts")
    plan = Plan()
    if envelope:
        plan = plan.with_columns(pl.coalesce("ts", "envelope_ts").alias("ts"))
    # A format whose lines may carry no time (bare uvicorn) leaves ts null on parsed lines:
    # they take the time they were read, and the file's format says so (`TIME_READ`).
    untimed = ts.is_null() & pl.col("_reject").is_null() & ~pl.col("_skip")
    plan = plan.with_columns(untimed.alias("_untimed")).with_columns(
        pl.when("_untimed")
        .then(pl.from_epoch("_now", "us").dt.replace_time_zone("UTC"))
        .otherwise(ts)
        .alias("ts")
    )
    # The timestamp validity rule once more, over every format's output: `finish` applies it,
    # but an envelope's time fills in here, and a parser that skips `finish` must not slip by.
    reason = pl.coalesce(pl.col("_reject"), time_rule(ts, pl.col("_latest")))
    # Blank lines are counted as skipped, never rejected; a cut line is never skipped.
    skip = pl.col("_skip") | (pl.col("text").str.strip_chars_start().str.len_bytes() == 0)
    if oversize:
        reason = pl.coalesce(pl.col("_over"), reason)
        skip = skip & pl.col("_over").is_null()
    plan = plan.with_columns(reason.alias("_reason"), skip.alias("_skip"))
    usable = pl.col("_reason").is_null() & ~pl.col("_skip")
    # The span of the usable lines' times: only a block spanning more than FUTURE_SLACK can
    # hold a stray time, so the costlier neighbour check (`STRAY_PLANS`) runs only then.
    span = pl.when(usable).then(ts.dt.epoch("us"))
    spread = span.max() - span.min()
    plan = plan.with_columns((spread.over("file") if by_file else spread).alias("_span"))
    endpoint = endpoints.template(pl.col("path"), pl.col("route"), openapi, folds, large)
    return plan.then(_VERDICT_PLAN).with_columns(
        (pl.col("row").cast(pl.Int64) + pl.col("_line0")).alias("line"), endpoint.alias("endpoint")
    )


_USABLE = pl.col("_reason").is_null() & ~pl.col("_skip")
_VERDICT_PLAN = Plan().with_columns(
    _USABLE.alias("_ok"), (~_USABLE & ~pl.col("_skip")).alias("_bad")
)


def _stray_plan(by_file: bool) -> Plan:
    """Reject a usable line whose time is a one-line glitch among its neighbours (`by_file`:
    neighbours in the same file only)."""
    glitch = stray_glitch(pl.col("ts"), _USABLE)
    return (
        Plan()
        .with_columns(
            pl.when(glitch.over("file") if by_file else glitch)
            .then(pl.lit(STRAY))
            .otherwise(pl.col("_reason"))
            .alias("_reason")
        )
        .then(_VERDICT_PLAN)
    )


STRAY_PLANS = {False: _stray_plan(False), True: _stray_plan(True)}
