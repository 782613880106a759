"""Parse step for proxy text logs: HAProxy's HTTP log format and Envoy's default text format.

lines -> frame of canonical columns (see `ingest.schema`). HAProxy lines are cut at fixed
separators, with one regex as the fallback; Envoy lines are one regex. Lines the proxy writes that
are not request records (start-up notices, TLS handshake failures, TCP-mode sessions, the proxy's
own diagnostics) are skipped rather than rejected.
"""

from __future__ import annotations

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.formats.clf import (
    blank,
    first_match,
    none_if_absent,
    run_query,
    valid_status,
    with_request,
)
from conflictradar.ingest.timestamps import parse_clf, parse_clf_local, parse_iso

# --- HAProxy -----------------------------------------------------------------------------------

# Optional syslog header: RFC 5424, rsyslog's high-precision RFC 3339 stamp, or RFC 3164.
_SYSLOG = (
    r"(?:<\d{1,3}>)?(?:"
    r"1 (?P<rfc5424_ts>\S+) \S+ \S+ \S+ \S+ (?:-|(?:\[[^\]]*\])+) \x{FEFF}?"
    r"|(?P<rfc3339_ts>\d{4}-\d\d-\d\dT\S+) (?:\S+ )?\S+: "
    r"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:\S+ )?\S+: "
    r")?"
)
# `option httplog`: client:port [accept_date] frontend backend/server TR/Tw/Tc/Tr/Ta status bytes
# req_cookie resp_cookie termination_state act/fe/be/srv/retries srv_queue/backend_queue
# {captured request headers} {captured response headers} "request line". Custom log-formats
# that add fields after backend/server (a Host header, say) are tolerated.
_HTTP = (
    r"(?P<client>\S+):\d+ "
    r"\[(?P<accept>\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)?)\] "
    r"\S+ \S+/\S+ (?:\S+ )*?"
    r"-?\d+/-?\d+/-?\d+/-?\d+/\+?(?P<total>-?\d+) "
    r"(?P<status>-?\d+) \+?(?P<bytes>\d+) "
    r"\S+ \S+ \S+ "
    r"\d+/\d+/\d+/\d+/\+?\d+ \d+/\d+ "
    r"(?:\{(?P<headers>[^}]*\}) )?(?:\{[^}]*\} )?"
    r'"(?P<request>[^"]*)"?'
)
_HAPROXY_RE = "^" + _SYSLOG + _HTTP

# What HAProxy writes besides HTTP records: anything tagged `haproxy`, session lines without a
# request (TCP mode, TLS handshake failures), and its own notices.
_HAPROXY_OTHER = (
    r"haproxy(?:\[\d+\])?: "
    r"|^(?:<\d{1,3}>)?1 \S+ \S+ haproxy "
    r"|^\S+:\d+ \[\d\d/[A-Za-z]{3}/\d{4}:[\d:.]+\] "
    r"|^\[(?:NOTICE|WARNING|ALERT|INFO)\]"
    r"|^Proxy \S+ (?:started|stopped)"
)
# A line with HTTP timers and a status that still failed the full pattern is a broken record.
_HAPROXY_HTTPISH = r"-?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+ -?\d+(?: |$)"


def parse_haproxy(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    """HAProxy `option httplog` lines, with or without a syslog header.

    Cut at fixed separators first (about 4x cheaper than the regex); lines that do not fit
    (a syslog header with structured data holding ` [`, say) go through the full regex.
    """
    return first_match([_parse_haproxy_split, _parse_haproxy_regex], "not a haproxy HTTP line")(
        lines, state
    )


def _parse_haproxy_split(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    return schema.finish(run_query(lines, _haproxy_split_query))


def _parse_haproxy_regex(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    return schema.finish(run_query(lines, _haproxy_regex_query))


def _haproxy_split_query(lf: pl.LazyFrame) -> pl.LazyFrame:
    """`<syslog> client:port [accept] fe be/srv [custom] T/T/T/T/T status bytes cc cs tsc
    a/f/b/s/r sq/bq {headers} {headers} "request"`, cut at ` [`, `"`, `] ` and ` {`; the
    fields between accept date and headers are counted from the end (custom fields sit before
    the timers)."""
    line = pl.col("line")
    lf = lf.with_columns(line.str.splitn(" [", 2).alias("_a"))
    lf = lf.with_columns(
        pl.col("_a").struct.field("field_0").str.split(" ").list.last().alias("_client"),
        pl.col("_a").struct.field("field_1").str.splitn('"', 3).alias("_q"),
    )
    lf = lf.with_columns(
        pl.col("_q").struct.field("field_0").str.splitn("] ", 2).alias("_d"),
        pl.col("_q").struct.field("field_1").alias("_request"),
    )
    lf = lf.with_columns(
        pl.col("_d").struct.field("field_0").alias("_accept"),
        pl.col("_d").struct.field("field_1").str.splitn(" {", 2).alias("_h"),
    )
    lf = lf.with_columns(
        pl.col("_h").struct.field("field_0").str.strip_chars(" ").str.split(" ").alias("_f"),
        pl.col("_h").struct.field("field_1").alias("_headers"),
    )
    fields = pl.col("_f").list
    timers = fields.get(-8, null_on_oob=True)
    lf = lf.with_columns(
        pl.col("_client").str.replace(r":\d+$", ""),
        line.str.extract(_HEADER_OFFSET, 1).alias("_offset"),
        timers.str.splitn("/", 5).struct.field("field_4").str.strip_prefix("+").alias("_total"),
        fields.get(-7, null_on_oob=True).alias("_status"),
        fields.get(-6, null_on_oob=True).str.strip_prefix("+").alias("_bytes"),
        (
            pl.col("_request").is_not_null()
            & (fields.len() >= 10)
            & (timers.str.count_matches("/", literal=True) == 4)
            & pl.col("_accept").str.contains(r"^\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)?$")
        )
        .fill_null(False)
        .alias("_matched"),
    )
    return _haproxy_columns(lf)


def _haproxy_regex_query(lf: pl.LazyFrame) -> pl.LazyFrame:
    lf = lf.with_columns(pl.col("line").str.extract_groups(_HAPROXY_RE).alias("_m"))
    m = pl.col("_m").struct
    header_ts = pl.coalesce(m.field("rfc5424_ts"), m.field("rfc3339_ts"))
    lf = lf.with_columns(
        m.field("client").alias("_client"),
        m.field("accept").alias("_accept"),
        header_ts.str.extract(r"([+-]\d\d:?\d\d|Z)$", 1).alias("_offset"),
        m.field("total").alias("_total"),
        m.field("status").alias("_status"),
        m.field("bytes").alias("_bytes"),
        m.field("headers").alias("_headers"),
        m.field("request").alias("_request"),
        m.field("accept").is_not_null().alias("_matched"),
    )
    return _haproxy_columns(lf)


# The offset of an RFC 5424 or RFC 3339 syslog timestamp before the HAProxy record.
_HEADER_OFFSET = r"^(?:<\d{1,3}>)?(?:1 )?\d{4}-\d\d-\d\dT\S*?(Z|[+-]\d\d:?\d\d) "


def _haproxy_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Canonical columns from the raw `_client`, `_accept`, `_offset`, ... text columns."""
    line = pl.col("line")
    matched = pl.col("_matched")
    unmatched = pl.when(~matched).then(line)
    other = unmatched.str.contains(_HAPROXY_OTHER) & ~unmatched.str.contains(_HAPROXY_HTTPISH)
    # The accept date has no offset. HAProxy writes it in the host's local time; an RFC 5424 or
    # RFC 3339 syslog header tells us that offset, otherwise it is the local zone's wall time
    # (`[ingest] timezone`, UTC by default).
    offset = pl.col("_offset").str.replace(":", "", literal=True)
    offset = pl.when(offset == "Z").then(pl.lit("+0000")).otherwise(offset)
    total = pl.col("_total").cast(pl.Float64, strict=False)
    lf = lf.with_columns(
        pl.coalesce(
            parse_clf(pl.col("_accept") + " " + offset),
            parse_clf_local(pl.when(offset.is_null()).then(pl.col("_accept"))),
        ).alias("ts"),
        none_if_absent(pl.col("_client")).alias("client_ip"),
        # The first captured request header is the Host header in most configurations; use it
        # only when it looks like a host name.
        pl.col("_headers")
        .str.extract(r"^((?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*(?::\d+)?)(?:\||\})", 1)
        .alias("host"),
        valid_status(pl.col("_status")).alias("status"),
        pl.col("_bytes").cast(pl.Int64, strict=False).alias("bytes"),
        pl.when(total >= 0).then(total).alias("duration_ms"),
        (blank(line) | (~matched & other.fill_null(False))).alias("_skip"),
    ).with_columns(
        pl.when(matched | pl.col("_skip"))
        .then(None)
        .otherwise(pl.lit("not a haproxy HTTP line"))
        .alias("_reject")
    )
    lf = with_request(lf, "_request")
    return lf.select(
        "ts", "client_ip", "host", "method", "path", "query", "status", "bytes", "duration_ms",
        "_reject", "_skip",
    )  # fmt: skip


# --- Envoy -------------------------------------------------------------------------------------

# Envoy's default format:
#   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
#   %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
#   "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%"
#   "%UPSTREAM_HOST%"
# Istio and newer configurations add fields after the flags (%RESPONSE_CODE_DETAILS%
# %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%") and at the end
# (%UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%
# %DOWNSTREAM_REMOTE_ADDRESS% ...): tolerated, and the downstream address is the client when
# there is no X-Forwarded-For.
_ENVOY_RE = (
    r'^\[(?P<start>[^\]]+)\] "(?P<request>[^"]*)" '
    r"(?P<status>\d+|-) \S+ "
    r'(?:(?:"[^"]*"|[^\s"]+) )*?'
    r"(?:\d+|-) (?P<sent>\d+|-) (?P<duration>\d+|-) \S+ "
    r'"(?P<xff>[^"]*)" "(?P<agent>[^"]*)" "(?P<request_id>[^"]*)" '
    r'"(?P<authority>[^"]*)" "(?P<upstream>[^"]*)"'
    r"(?: \S+ \S+ \S+ (?P<downstream>\S+))?"
)
# Envoy's and Istio's own diagnostics, which share a container log with the access log.
_ENVOY_OTHER = (
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\]\[\d+\]\[\w+\]"
    r"|^\d{4}-\d\d-\d\dT[\d:.]+Z\s+(?:trace|debug|info|warn|warning|error|critical)\s"
)


def parse_envoy_text(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    """Envoy access-log lines in the default text format (the `envoy` Format calls this)."""
    return schema.finish(run_query(lines, _envoy_query))


def _envoy_query(lf: pl.LazyFrame) -> pl.LazyFrame:
    line = pl.col("line")
    lf = lf.with_columns(line.str.extract_groups(_ENVOY_RE).alias("_m"))
    m = pl.col("_m").struct
    matched = m.field("start").is_not_null()
    downstream = (
        none_if_absent(m.field("downstream")).str.replace(r":\d+$", "").str.strip_chars("[]")
    )
    forwarded = none_if_absent(m.field("xff")).str.splitn(",", 2).struct.field("field_0")
    lf = lf.with_columns(
        parse_iso(m.field("start")).alias("ts"),
        pl.coalesce(forwarded.str.strip_chars(), downstream).alias("client_ip"),
        none_if_absent(m.field("authority")).alias("host"),
        none_if_absent(m.field("agent")).alias("user_agent"),
        none_if_absent(m.field("request_id")).alias("request_id"),
        # `%UPSTREAM_HOST%` logged as `-`: Envoy answered without reaching an upstream (0).
        pl.when(m.field("upstream") == "-").then(pl.lit(0)).alias("upstream_status"),
        valid_status(m.field("status")).alias("status"),
        m.field("sent").cast(pl.Int64, strict=False).alias("bytes"),
        m.field("duration").cast(pl.Float64, strict=False).alias("duration_ms"),
        m.field("request").alias("_request"),
        # TCP proxy sessions (`"- - -"`) are not requests.
        (
            blank(line)
            | (m.field("request") == "- - -")
            | (~matched & line.str.contains(_ENVOY_OTHER))
        ).alias("_skip"),
    ).with_columns(
        pl.when(matched | pl.col("_skip"))
        .then(None)
        .otherwise(pl.lit("not an envoy access line"))
        .alias("_reject")
    )
    lf = with_request(lf, "_request")
    return lf.drop("line", "_m")


FORMATS: list[Format] = [
    Format("haproxy", parse_haproxy, "HAProxy HTTP log format, with or without a syslog header"),
]
