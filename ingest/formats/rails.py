"""Parse step for Rails request logs: a request is a `Started` line, its `Completed` line, and
whatever the request logged between (or right after) them.

lines -> frame of canonical columns (see `ingest.schema`). Rails writes
`Started PUT "/orders/7" for 10.0.0.5 at 2026-09-10 00:00:00 +0000` when a request arrives and
`Completed 409 Conflict in 141ms (...)` when it ends, with the exception it raised logged as
`ActiveRecord::StaleObjectError (Attempted to update a stale object: Order.):` in between or
after. Requests interleave (Puma threads), so lines are joined per *stream*:

- the request-id tag (`config.log_tags = [:request_id]`: `[8c4f...] Started ...`), else
- the process (Ruby Logger's `I, [2026-09-10T00:00:00.123456 #4127]  INFO -- : ...`, a Heroku
  `app[web.3]:` source), else the whole file;

within a stream the k-th `Completed` closes the k-th `Started` (requests leave in the order they
came, which a tag makes certain). An exception line belongs to the request whose `Completed` it
follows, or to the one in flight when a `Started` came last.

Accounting: one request row per request, on its `Completed` line (ts from its `Started`); every
other line is skipped, never rejected, except a `Completed` that has neither its `Started` nor a
time of its own. A `Started` still open at the end of a batch (its `Completed` comes in a later
batch of `watch`) is kept in the file's `ParserState` and joined when the `Completed` arrives; an
exception logged after a `Completed` that ended the previous batch is not attached (rare: Rails
writes both in one burst). At most `MAX_PENDING` open requests are kept per file, the oldest
dropped first (a process that died mid-request never completes them).
"""

from __future__ import annotations

import json

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.formats.clf import valid_status
from conflictradar.ingest.timestamps import from_local, parse_iso

MAX_PENDING = 10_000
_STATE_KEY = "rails_pending"

_PREFIX = (
    r"^(?:[DIWEFAU], \[(?P<logger_ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?) #(?P<pid>\d+)\]"
    r" +[A-Z]+ -- [^:]*: )?"  # Ruby Logger's default formatter
    r"(?:(?P<source_ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) "
    r"(?P<source>[\w.-]+\[[\w.-]+\]): )?"  # Heroku / syslog-style `<time> app[web.3]: `
    r"(?P<tags>(?:\[[^\]]*\] )*)"
    r"(?P<body>.*)$"
)
_STARTED = (
    r'^Started (?P<method>[A-Z][A-Z_-]*) "(?P<target>[^"]*)" for (?P<client>\S+) '
    r"at (?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [+-]\d{4})?)"
)
_COMPLETED = r"^Completed (?P<status>\d{3})\b.*? in (?P<ms>\d+(?:\.\d+)?)ms"
# `ActiveRecord::StaleObjectError (Attempted to update a stale object: Order.):` as Rails'
# DebugExceptions logs it, or an exception class named as such at the start of a line.
_EXCEPTION = (
    r"^\s*(?:(?:[A-Z]\w*::)*[A-Z]\w* \(.*\):\s*$"
    r"|(?:[A-Z]\w*::)*[A-Z]\w*(?:Error|Exception|Invalid|NotUnique|NotFound|Conflict|Missing"
    r"|Timeout)\b)"
)
_CANDIDATE = ["Started ", "Completed ", "::", "Error", "Exception", "Invalid", "NotUnique",
              "NotFound", "Conflict", "Missing", "Timeout"]  # fmt: skip
# A tag that is a request id (UUID, hex or a long token), not a subdomain or a user name.
_ID_TAG = r"\[([0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|[0-9a-fA-F]{16,}|[A-Za-z0-9_-]{20,})\]"

_PENDING_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(), "started_ts": schema.UTC_TS, "method": pl.String(),
    "target": pl.String(), "client_ip": pl.String(), "request_id": pl.String(),
    "message": pl.String(),
}  # fmt: skip


def _lines(lines: pl.Series) -> pl.DataFrame:
    """Prefix, stream key and kind (S started, C completed, E exception, O other) per line."""
    text = lines.cast(pl.String).fill_null("")
    # Most lines of a Rails log are neither records nor exceptions (SQL, renders, parameters):
    # one Aho-Corasick pass spares them the prefix regex, the costly part.
    candidate = text.str.contains_any(_CANDIDATE)
    frame = pl.DataFrame({"line": text}).with_columns(
        pl.when(candidate).then(pl.col("line")).str.extract_groups(_PREFIX).alias("p")
    )
    p = pl.col("p").struct
    body = p.field("body").fill_null("")
    request_id = p.field("tags").str.extract(_ID_TAG, 1)
    logger_ts = p.field("logger_ts").str.strptime(
        pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False
    )
    prefix_ts = pl.coalesce(from_local(logger_ts), parse_iso(p.field("source_ts")))
    frame = frame.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        pl.coalesce(request_id, p.field("pid"), p.field("source"), pl.lit("")).alias("key"),
        request_id.alias("request_id"),
        prefix_ts.alias("prefix_ts"),
        body.alias("body"),
        # Only the lines that can be records pay for the regexes.
        pl.when(body.str.starts_with("Started "))
        .then(body)
        .str.extract_groups(_STARTED)
        .alias("s"),
        pl.when(body.str.starts_with("Completed "))
        .then(body)
        .str.extract_groups(_COMPLETED)
        .alias("c"),
    )
    s, c = pl.col("s").struct, pl.col("c").struct
    kind = (
        pl.when(s.field("method").is_not_null())
        .then(pl.lit("S"))
        .when(c.field("status").is_not_null())
        .then(pl.lit("C"))
        .when(pl.col("body").str.contains(_EXCEPTION))
        .then(pl.lit("E"))
        .otherwise(pl.lit("O"))
    )
    at = s.field("at")
    at_ts = pl.coalesce(
        at.str.strptime(schema.UTC_TS, "%Y-%m-%d %H:%M:%S %z", strict=False),
        from_local(at.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)),
    )
    # `at` has whole seconds; the Logger's own stamp of the same line has microseconds.
    offset = pl.col("prefix_ts") - at_ts
    precise = (offset >= pl.duration(seconds=0)) & (offset < pl.duration(seconds=1))
    started_ts = pl.coalesce(pl.when(precise).then(pl.col("prefix_ts")), at_ts, pl.col("prefix_ts"))
    return frame.select(
        "row", "key", "request_id", "prefix_ts", kind.alias("kind"),
        started_ts.alias("started_ts"),
        s.field("method").alias("method"),
        s.field("target").alias("target"),
        s.field("client").alias("client_ip"),
        valid_status(c.field("status")).alias("status"),
        c.field("ms").cast(pl.Float64, strict=False).alias("duration_ms"),
        pl.col("body").str.strip_chars().str.strip_suffix(":").alias("text"),
    )  # fmt: skip


def _pending(state: ParserState) -> pl.DataFrame:
    raw = state.extra.get(_STATE_KEY)
    if not raw:
        return pl.DataFrame(schema=_PENDING_SCHEMA)
    records = json.loads(raw)
    frame = pl.DataFrame(
        records, schema={**_PENDING_SCHEMA, "started_ts": pl.String()}, orient="row"
    )
    return frame.with_columns(parse_iso(pl.col("started_ts")).alias("started_ts"))


def _save_pending(state: ParserState, open_requests: pl.DataFrame) -> None:
    kept = open_requests.tail(MAX_PENDING).select(
        *[
            pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ") if c == "started_ts" else pl.col(c)
            for c in _PENDING_SCHEMA
        ]
    )
    if kept.is_empty():
        state.extra.pop(_STATE_KEY, None)
    else:
        state.extra[_STATE_KEY] = json.dumps(kept.rows())


def parse_rails(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    got = _lines(lines)
    pending = _pending(state)
    # Requests still open from earlier batches come first in their stream, as virtual lines.
    carried = pending.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) - pl.len()).alias("row"),
        "key", "request_id", pl.lit(None, schema.UTC_TS).alias("prefix_ts"),
        pl.lit("S").alias("kind"), "started_ts", "method", "target", "client_ip",
        pl.lit(None, pl.Int16).alias("status"), pl.lit(None, pl.Float64).alias("duration_ms"),
        pl.col("message").alias("text"),
    )  # fmt: skip
    events = pl.concat([carried, got], how="vertical_relaxed")
    is_s = (pl.col("kind") == "S").cast(pl.Int64)
    is_c = (pl.col("kind") == "C").cast(pl.Int64)
    last_event = (
        pl.when(pl.col("kind").is_in(["S", "C"])).then(pl.col("kind")).forward_fill().over("key")
    )
    events = events.with_columns(
        is_s.cum_sum().over("key").alias("started"),
        is_c.cum_sum().over("key").alias("completed"),
        last_event.alias("last_event"),
    )
    # The request each line belongs to, by rank within its stream.
    rank = (
        pl.when(pl.col("kind") == "S")
        .then(pl.col("started"))
        .when(pl.col("kind") == "C")
        .then(pl.col("completed"))
        .when(pl.col("last_event") == "C")
        .then(pl.col("completed"))
        .when(pl.col("last_event") == "S")
        .then(pl.col("completed") + 1)
    )
    events = events.with_columns(rank.alias("rank"))
    starts = events.filter(pl.col("kind") == "S").select(
        "key", "rank", "started_ts", "method", "target", "client_ip",
        pl.col("request_id").alias("s_request_id"),
        pl.when(pl.col("row") < 0).then(pl.col("text")).alias("carried_message"),
    )  # fmt: skip
    messages = (
        events.filter(pl.col("kind") == "E")
        .group_by("key", "rank", maintain_order=True)
        .agg(pl.col("text").first().alias("message"))
    )
    ends = events.filter(pl.col("kind") == "C").select(
        "row", "key", "rank", "request_id", "prefix_ts", "status", "duration_ms"
    )
    done = (
        ends.join(starts, on=["key", "rank"], how="left")
        .join(messages, on=["key", "rank"], how="left")
        .select(
            "row",
            pl.coalesce("started_ts", "prefix_ts").alias("ts"),
            "client_ip", "method", "target", "status", "duration_ms",
            pl.coalesce("request_id", "s_request_id").alias("request_id"),
            pl.coalesce("carried_message", "message").alias("message"),
            pl.when(pl.col("method").is_null() & pl.col("prefix_ts").is_null())
            .then(pl.lit("Rails Completed line without its Started line"))
            .alias("_reject"),
        )
    )  # fmt: skip
    # Requests whose Completed has not come yet stay open for the next batch, with any
    # exception already logged for them.
    closed = ends.select("key", "rank")
    open_requests = (
        starts.join(closed, on=["key", "rank"], how="anti")
        .join(messages, on=["key", "rank"], how="left")
        .select(
            "key", "started_ts", "method", "target", "client_ip",
            pl.col("s_request_id").alias("request_id"),
            pl.coalesce("carried_message", "message").alias("message"),
        )
    )  # fmt: skip
    _save_pending(state, open_requests)
    frame = (
        got.select("row")
        .join(done, on="row", how="left")
        .sort("row")
        .with_columns(pl.col("status").is_null().alias("_skip"))
        .drop("row")
    )
    return schema.finish(frame)


FORMATS: list[Format] = [
    Format(
        "rails",
        parse_rails,
        "Rails request logs: Started/Completed pairs joined by request-id tag or process",
    )
]
