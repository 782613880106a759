"""W3C extended / IIS access logs (tail -> **parse**): `#Fields` directives name the columns.

A file may repeat its directives (`#Software`, `#Version`, `#Date`, `#Fields`) whenever the server
restarts or the configuration changes, so the columns can change mid-file. Every line is governed
by the last `#Fields` above it: the header text is forward-filled down the batch, each distinct
header becomes a small id, and a field is picked per line with `list.get(position_of[id])`. The
last header (and `#Date`, `#GMT-Offset`) is kept in `ParserState`, so a tailed or resumed file
parses the same as one read in one go. CloudFront's tab-separated logs reuse `read_directives`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from conflictradar.ingest import schema, timestamps
from conflictradar.ingest.formats import Format, ParserState

# A token is a double-quoted value ("" escapes a quote, as IIS Advanced Logging writes it) or a
# run of anything but blanks. Several blanks in a row separate like one (Oracle Web Cache).
TOKEN = r'"(?:[^"]|"")*"|[^ \t\r\n]+'
FIELDS_DIRECTIVE = r"(?i)^#Fields:[ \t]*(\S.*?)[ \t\r]*$"
DATE_DIRECTIVE = r"(?i)^#(?:Start-)?Date:[ \t]*(\S+)"
OFFSET_DIRECTIVE = r"(?i)^#GMT-Offset:[ \t]*([+-]\d\d:?\d\d)\b"
DATE_FORMATS = ("%Y-%m-%d", "%d/%b/%Y", "%d-%b-%Y")

NO_HEADER = "w3c line before any #Fields header"

# ParserState.extra keys (the header itself lives in ParserState.header).
STATE_DATE = "w3c_date"
STATE_OFFSET = "w3c_gmt_offset"

# Internal column names of the working frame.
LINE, HEADER, DIRECTIVE, DATE, OFFSET, TOKENS = "_l", "_h", "_d", "_date", "_off", "_tok"


@dataclass(frozen=True)
class Directives:
    """A batch with, per line, the id of the `#Fields` header that governs it.

    `frame` holds LINE, DIRECTIVE (a `#` line or a blank line), HEADER (Int32 index into
    `headers`, null before any header), DATE (the last `#Date`, as a Date) and OFFSET (the last
    `#GMT-Offset`, e.g. `-0800`). `headers` are lower-cased field lists.
    """

    frame: pl.DataFrame
    headers: list[list[str]]
    # The header id standing for the caller's default field list (no header seen yet), if any.
    default_id: int | None = None

    def position(self, *names: str) -> pl.Expr:
        """Per line, the index of the first of `names` present in its header, else null."""
        positions: dict[int, int] = {}
        for hid, fields in enumerate(self.headers):
            for name in names:
                if name in fields:
                    positions[hid] = fields.index(name)
                    break
        if not positions:
            return pl.lit(None, pl.Int64)
        if len(set(positions.values())) == 1 and len(positions) == len(self.headers):
            # One layout for every header (the usual case): a constant is cheaper than a lookup.
            return pl.lit(next(iter(positions.values())), pl.Int64)
        return pl.col(HEADER).replace_strict(positions, default=None, return_dtype=pl.Int64)

    def field_count(self) -> pl.Expr:
        """Per line, how many fields its header names."""
        counts = {hid: len(fields) for hid, fields in enumerate(self.headers)}
        if not counts:
            return pl.lit(None, pl.Int64)
        return pl.col(HEADER).replace_strict(counts, default=None, return_dtype=pl.Int64)

    def pick(self, *names: str) -> pl.Expr:
        """The raw token of the first of `names` that the line's header has (null if none)."""
        if not self.has(*names):
            return pl.lit(None, pl.String)
        return pl.col(TOKENS).list.get(self.position(*names), null_on_oob=True)

    def has(self, *names: str) -> bool:
        """Whether any header of the batch names one of `names`."""
        return any(name in fields for fields in self.headers for name in names)


def _normalise(fields_text: pl.Series) -> pl.Series:
    return fields_text.str.replace_all(r"[ \t]+", " ")


def read_directives(
    lines: pl.Series, state: ParserState, default: list[str] | None = None
) -> Directives:
    """Find the directives of a batch and the header governing each line; update `state`.

    Lines before the first `#Fields` use `state.header`, else `default`, else get no header.
    """
    line = lines.cast(pl.String).str.strip_chars_end("\r\n")
    directive = line.str.starts_with("#").fill_null(False)
    # Directives are few: parse them on their own and spread the results back to full length.
    rows = directive.arg_true()
    text = line.gather(rows)

    def spread(values: pl.Series) -> pl.Series:
        return pl.repeat(None, len(line), dtype=values.dtype, eager=True).scatter(rows, values)

    frame = pl.DataFrame(
        {
            LINE: line,
            DIRECTIVE: directive,
            HEADER: spread(_normalise(text.str.extract(FIELDS_DIRECTIVE, 1))),
            DATE: spread(_parse_date(text.str.extract(DATE_DIRECTIVE, 1))),
            OFFSET: spread(text.str.extract(OFFSET_DIRECTIVE, 1).str.replace(":", "")),
        }
    )
    seen = frame.select(
        pl.col(HEADER).drop_nulls().last().alias("h"),
        pl.col(DATE).drop_nulls().last().alias("d"),
        pl.col(OFFSET).drop_nulls().last().alias("o"),
    ).row(0)

    state_header = state.header
    fallback = state_header or default
    fallback_text = " ".join(fallback) if fallback else None
    keys: list[str] = [fallback_text] if fallback_text else []
    batch_keys = frame[HEADER].drop_nulls().unique(maintain_order=True).to_list()
    keys += [k for k in batch_keys if k not in keys]
    ids = {key: hid for hid, key in enumerate(keys)}
    state_date = state.extra.get(STATE_DATE)

    frame = frame.with_columns(
        pl.col(HEADER)
        .forward_fill()
        .fill_null(pl.lit(fallback_text, pl.String))
        .replace_strict(ids, default=None, return_dtype=pl.Int32),
        pl.col(DATE)
        .forward_fill()
        .fill_null(pl.lit(state_date, pl.String).str.to_date("%Y-%m-%d", strict=False)),
        pl.col(OFFSET).forward_fill().fill_null(pl.lit(state.extra.get(STATE_OFFSET), pl.String)),
        (pl.col(DIRECTIVE) | (pl.col(LINE).str.strip_chars(" \t") == "")).fill_null(True),
    )

    header_text, date, offset = seen
    if header_text is not None:
        state.header = header_text.split(" ")
    if date is not None:
        state.extra[STATE_DATE] = date.isoformat()
    if offset is not None:
        state.extra[STATE_OFFSET] = offset
    from_default = fallback_text is not None and not state_header
    default_id = 0 if from_default and fallback_text not in batch_keys else None
    return Directives(frame, [key.lower().split(" ") for key in keys], default_id)


def _parse_date(text: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"d": text})
    dates = [pl.col("d").str.strptime(pl.Date, f, strict=False) for f in DATE_FORMATS]
    return frame.select(pl.coalesce(dates))["d"]


def absent(token: pl.Expr) -> pl.Expr:
    """`-` and friends -> null; tokens carry no surrounding blanks, so no strip is needed."""
    return pl.when(token.is_in(schema.ABSENT)).then(None).otherwise(token)


def unquote(token: pl.Expr) -> pl.Expr:
    """Strip the quotes of a quoted token and undo its doubled quotes; others pass unchanged."""
    quoted = token.str.starts_with('"') & token.str.ends_with('"') & (token.str.len_bytes() >= 2)
    inner = token.str.strip_prefix('"').str.strip_suffix('"').str.replace_all('""', '"')
    return pl.when(quoted).then(inner).otherwise(token)


def decode_plus(token: pl.Expr) -> pl.Expr:
    """IIS writes a space as `+` and keeps a literal `+`: `;++http` is `; +http`."""
    return token.str.replace_all(r"\+(\+?)", " $1")


def first_forwarded(value: pl.Expr) -> pl.Expr:
    """The originating client of an X-Forwarded-For chain (`a, b, c` -> `a`)."""
    return schema.absent_to_null(value.str.extract(r"^\s*([^,\s]+)", 1))


def _tokens(line: pl.Series) -> tuple[pl.Expr, bool]:
    """The expression splitting lines into tokens, and whether any token may be quoted.

    Decided once per batch: plain IIS lines split on single spaces several times faster than the
    quote-aware regex, which only batches with quotes, tabs or runs of blanks need.
    """
    quoted = bool(line.str.contains('"', literal=True).any())
    irregular = quoted or any(
        bool(line.str.contains(sep, literal=True).any()) for sep in ("\t", "  ")
    )
    if irregular:
        return pl.col(LINE).str.extract_all(TOKEN), quoted
    return pl.col(LINE).str.strip_chars(" ").str.split(" "), False


def _target(doc: Directives, pick: Callable[..., pl.Expr]) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(path, query, host) from `cs-uri-stem`/`cs-uri-query`, or from a whole `cs-uri`."""
    path, query = pick("cs-uri-stem"), pick("cs-uri-query")
    if not doc.has("cs-uri"):
        return path, query, pl.lit(None, pl.String)
    # `cs-uri` (Oracle, Incapsula) is the whole request-target; Incapsula drops the scheme
    # (`www.example.com/page.php`), so give it one back for `split_target` to strip.
    uri = pick("cs-uri")
    bare_host = uri.str.contains(r"^[^/]+\.[^/]+/") & ~uri.str.contains("://", literal=True)
    uri = pl.when(bare_host).then(pl.concat_str([pl.lit("http://"), uri])).otherwise(uri)
    uri_path, uri_query = schema.split_target(uri)
    host = uri.str.extract(r"^[A-Za-z][A-Za-z0-9+.-]*://(\[[^\]]*\]|[^/?#:]+)", 1)
    return pl.coalesce(path, uri_path), pl.coalesce(query, uri_query), host


def parse_w3c(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    doc = read_directives(lines, state)
    tokens, quoted = _tokens(doc.frame[LINE])
    frame = doc.frame.with_columns(pl.when(~pl.col(DIRECTIVE)).then(tokens).alias(TOKENS))

    def pick(*names: str) -> pl.Expr:
        token = doc.pick(*names)
        return absent(unquote(token) if quoted else token)

    date = pl.coalesce(pick("date"), pick("date-local"), pl.col(DATE).dt.to_string("%Y-%m-%d"))
    clock = pl.coalesce(pick("time"), pick("time-local"))
    stamp = pl.concat_str([date, pl.lit("T"), clock, pl.col(OFFSET)], ignore_nulls=True)
    # W3C `date`/`time` are UTC; `date-local`/`time-local` without a #GMT-Offset are wall time
    # in the local zone (`[ingest] timezone`).
    utc = pick("time").is_not_null()
    ts = pl.coalesce(
        timestamps.parse_iso(pl.when(utc).then(stamp), naive_utc=True),
        timestamps.parse_iso(pl.when(~utc).then(stamp)),
    )
    path, query, uri_host = _target(doc, pick)
    agent = doc.pick("cs(user-agent)")
    if quoted:
        agent = (
            pl.when(agent.str.starts_with('"')).then(unquote(agent)).otherwise(decode_plus(agent))
        )
    else:
        agent = decode_plus(agent)
    # IIS writes time-taken in milliseconds (the W3C draft said seconds; nobody does).
    millis = pick("time-taken", "timetakenms").cast(pl.Float64, strict=False)

    count = pl.col(TOKENS).list.len()
    expected = doc.field_count()
    reject = (
        pl.when(pl.col(DIRECTIVE))
        .then(None)
        .when(pl.col(HEADER).is_null())
        .then(pl.lit(NO_HEADER))
        .when(count != expected)
        .then(pl.format("w3c line has {} fields, its #Fields header names {}", count, expected))
    )
    out = frame.select(
        ts.alias("ts"),
        pl.coalesce(pick("cs-host", "cs(host)"), uri_host).alias("host"),
        pl.coalesce(
            first_forwarded(pick("x-forwarded-for", "cs(x-forwarded-for)", "s-xff")),
            pick("c-ip"),
        ).alias("client_ip"),
        absent(agent).alias("user_agent"),
        # Microsoft FTP logs prefix the command with its session: `[2]USER`.
        pick("cs-method").str.replace(r"^\[\d+\]", "").alias("method"),
        path.alias("path"),
        query.alias("query"),
        pick("sc-status").alias("status"),
        pick("sc-bytes", "bytes").alias("bytes"),
        millis.alias("duration_ms"),
        pick("cs(x-request-id)", "x-request-id", "cs(x-amzn-trace-id)").alias("request_id"),
        reject.alias("_reject"),
        pl.col(DIRECTIVE).alias("_skip"),
    )
    return schema.finish(out)


FORMATS: list[Format] = [
    Format("w3c", parse_w3c, "IIS / W3C extended log format (#Fields headers, several per file)"),
]
