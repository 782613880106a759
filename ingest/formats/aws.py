"""AWS access logs (tail -> **parse**): Application Load Balancer, CloudFront (legacy) and S3.

ALB and S3 lines have a fixed field order with AWS adding fields at the end over the years, so
one anchored regex per format captures the known fields and ignores whatever trails them.
CloudFront writes W3C-style `#Fields` headers over tab-separated values and reuses the w3c
header machinery, with AWS's documented field order as the fallback when no header is seen.
"""

from __future__ import annotations

import polars as pl

from conflictradar.ingest import schema, timestamps
from conflictradar.ingest.formats import Format, ParserState
from conflictradar.ingest.formats.w3c import (
    DIRECTIVE,
    HEADER,
    LINE,
    TOKENS,
    absent,
    first_forwarded,
    read_directives,
)

# A double-quoted field; ALB and S3 do not escape quotes, but a `\"` must not end the field.
_QUOTED = r'"((?:[^"\\]|\\.)*)"'


def _q(name: str) -> str:
    return _QUOTED.replace("(", f"(?P<{name}>", 1)


# The regexes below capture only the groups they use (a dozen, not thirty) and never leave a
# byte two ways to go (`h(?:ttps?|2)`, not `https?|h2`): measured, that makes extraction three
# to four times faster (the regex engine can take its cheaper capture path).
_SKIP_QUOTED = r'"(?:[^"\\]|\\.)*"'

# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html
# type time elb client:port target:port request_processing_time target_processing_time
# response_processing_time elb_status_code target_status_code received_bytes sent_bytes "request"
# "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name" "chosen_cert_arn"
# matched_rule_priority request_creation_time "actions_executed" "redirect_url" "error_reason" ...
# Fields up to trace_id are required; the later ones arrived over the years and are optional,
# and whatever AWS appends after error_reason is ignored.
ALB = (
    r"^(?:h(?:ttps?|2)|grpcs?|wss?) (?P<time>\S+) \S+ (?P<client>\S+) \S+"
    r" (?P<request_time>\S+) (?P<target_time>\S+) (?P<response_time>\S+)"
    r" (?P<elb_status>\S+) (?P<target_status>\S+) \S+ (?P<sent>\S+)"
    rf" {_q('request')} {_q('user_agent')} \S+ \S+ \S+ {_q('trace_id')}"
    rf"(?: {_q('domain')} {_SKIP_QUOTED} \S+"
    rf"(?: \S+ {_SKIP_QUOTED} {_SKIP_QUOTED}(?: {_q('error')})?)?)?"
)

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/LogFormat.html
# bucket_owner bucket [time] remote_ip requester request_id operation key "request_uri" status
# error_code bytes_sent object_size total_time turn_around_time "referer" "user_agent" version_id
# host_id signature_version cipher_suite authentication_type host_header tls_version ...
# Older logs stop after user_agent or version_id; newer ones append fields after host_header.
S3 = (
    r"^\S+ (?P<bucket>\S+) \[(?P<time>[^\]]+)\] (?P<remote_ip>\S+) \S+ (?P<request_id>\S+)"
    rf" (?P<operation>\S+) \S+ {_q('request')} (?P<status>\S+) (?P<error_code>\S+)"
    rf" (?P<bytes_sent>\S+) \S+ (?P<total_time>\S+) \S+ {_SKIP_QUOTED} {_q('user_agent')}"
    r"(?: \S+(?: \S+ \S+ \S+ \S+ (?P<host_header>\S+))?)?"
)

# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logs-reference.html
_CLOUDFRONT_ORDER = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer)"
    " cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header"
    " cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher"
    " x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port"
    " time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len"
    " sc-range-start sc-range-end"
)
CLOUDFRONT_FIELDS = _CLOUDFRONT_ORDER.split()

# CloudFront percent-encodes spaces and a few other characters in user agents; `%25` goes last
# so `%2520` decodes once, to `%20`, as written.
_PERCENT = [("%20", " "), ("%22", '"'), ("%5C", "\\"), ("%3C", "<"), ("%3E", ">"), ("%25", "%")]

# `METHOD target PROTOCOL` split in one pass; an absolute-form target (`https://host:443/p?q`,
# as ALB writes it) gives its authority. ALB writes `- http://host:80- -` for requests it could
# not parse. The path/query split follows `schema.split_target`.
_REQUEST = (
    r"^(?P<method>\S+) (?:[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#\s]*@)?"
    r"(?P<authority>\[[^\]]*\]|[^:/?#\s]*)(?::[^/?#\s]*)?)?"
    r"(?P<path>[^?#\s]*)(?:\?(?P<query>[^#\s]*))?(?:#\S*)?(?: \S+)?$"
)


def _blank(line: pl.Expr) -> pl.Expr:
    return line.str.strip_chars().fill_null("") == ""


def _extract(lines: pl.Series, pattern: str) -> pl.DataFrame:
    """The named groups of `pattern` as columns (null where a line does not match), plus LINE
    and the request line split into method, authority (host only), path and query."""
    frame = pl.DataFrame({LINE: lines.cast(pl.String).str.strip_chars_end("\r\n")})
    frame = frame.with_columns(pl.col(LINE).str.extract_groups(pattern).alias("_f")).unnest("_f")
    parts = frame.select(pl.col("request").str.extract_groups(_REQUEST).alias("_r")).unnest("_r")
    return pl.concat([frame, parts], how="horizontal")


def _request_columns() -> list[pl.Expr]:
    path = pl.col("path")
    return [
        schema.absent_to_null(pl.col("method")).alias("method"),
        pl.when(path == "").then(pl.lit("/")).otherwise(path).alias("path"),
        schema.absent_to_null(pl.col("query")).alias("query"),
    ]


def _without_port(value: pl.Expr) -> pl.Expr:
    """`192.0.2.1:443` -> `192.0.2.1`; `[2001:db8::1]:443` -> `2001:db8::1` (ALB always logs a
    port; string stripping is several times cheaper than a regex here)."""
    bare = value.str.strip_chars_end("0123456789")
    unbracketed = bare.str.strip_suffix(":").str.strip_chars("[]")
    return pl.when(bare.str.ends_with(":")).then(unbracketed).otherwise(value)


def parse_alb(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    frame = _extract(lines, ALB)
    times = [
        pl.col(name).cast(pl.Float64, strict=False)
        for name in ("request_time", "target_time", "response_time")
    ]
    # -1 means the load balancer could not dispatch, or the target did not answer: no duration.
    known = pl.all_horizontal([t >= 0 for t in times])
    duration = pl.when(known).then((pl.sum_horizontal(times) * 1000.0).round(3))
    # The SNI name when TLS gave one, else the Host the request was sent to.
    host = pl.coalesce(
        schema.absent_to_null(pl.col("domain")),
        schema.absent_to_null(pl.col("authority").str.strip_chars("[]")),
    )
    out = frame.select(
        timestamps.parse_iso(pl.col("time")).alias("ts"),
        host.alias("host"),
        schema.absent_to_null(_without_port(pl.col("client"))).alias("client_ip"),
        schema.absent_to_null(pl.col("user_agent")).alias("user_agent"),
        *_request_columns(),
        pl.col("elb_status").alias("status"),
        pl.col("target_status").alias("upstream_status"),
        pl.col("sent").alias("bytes"),
        duration.alias("duration_ms"),
        schema.absent_to_null(pl.col("trace_id")).alias("request_id"),
        schema.absent_to_null(pl.col("error")).alias("message"),
        pl.when(pl.col("time").is_null())
        .then(pl.lit("not an alb access log line"))
        .alias("_reject"),
        _blank(pl.col(LINE)).alias("_skip"),
    )
    return schema.finish(out)


def parse_s3(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    frame = _extract(lines, S3)
    parsed = pl.col("time").is_not_null()
    bytes_sent = pl.col("bytes_sent")
    out = frame.select(
        timestamps.parse_clf(pl.col("time")).alias("ts"),
        pl.coalesce(schema.absent_to_null(pl.col("host_header")), pl.col("bucket")).alias("host"),
        schema.absent_to_null(pl.col("remote_ip")).alias("client_ip"),
        schema.absent_to_null(pl.col("user_agent")).alias("user_agent"),
        *_request_columns(),
        pl.col("status").alias("status"),
        # S3 writes `-` for zero bytes sent.
        pl.when(bytes_sent == "-").then(pl.lit("0")).otherwise(bytes_sent).alias("bytes"),
        pl.col("total_time").alias("duration_ms"),
        schema.absent_to_null(pl.col("request_id")).alias("request_id"),
        schema.absent_to_null(pl.col("error_code")).alias("message"),
        pl.when(~parsed).then(pl.lit("not an s3 access log line")).alias("_reject"),
        # Lifecycle and other internal actions (S3.EXPIRE.OBJECT, S3.TRANSITION.OBJECT, ...) are
        # logged too, with no HTTP request behind them.
        (_blank(pl.col(LINE)) | (parsed & pl.col("operation").str.starts_with("S3."))).alias(
            "_skip"
        ),
    )
    return schema.finish(out)


def _percent_decode(value: pl.Expr) -> pl.Expr:
    for code, char in _PERCENT:
        value = value.str.replace_all(code, char, literal=True)
    return value


def parse_cloudfront(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    doc = read_directives(lines, state, default=CLOUDFRONT_FIELDS)
    frame = doc.frame.with_columns(
        pl.when(~pl.col(DIRECTIVE)).then(pl.col(LINE).str.split("\t")).alias(TOKENS)
    )

    def pick(*names: str) -> pl.Expr:
        return absent(doc.pick(*names))

    count = pl.col(TOKENS).list.len()
    expected = doc.field_count()
    if doc.default_id is not None:
        # No #Fields seen: older logs carry fewer fields than today's list, but all of these.
        expected = pl.when(pl.col(HEADER) == doc.default_id).then(19).otherwise(expected)
    result = pl.coalesce(pick("x-edge-result-type"), pick("x-edge-response-result-type"))
    error = (result == "Error") | (pick("x-edge-response-result-type") == "Error")
    seconds = pick("time-taken").cast(pl.Float64, strict=False)
    reject = (
        pl.when(pl.col(DIRECTIVE))
        .then(None)
        .when(pl.col(HEADER).is_null() | (count < 2))
        .then(pl.lit("not a cloudfront line"))
        .when(count < expected)
        .then(pl.format("cloudfront line has {} fields, expected at least {}", count, expected))
    )
    out = frame.select(
        # CloudFront's date and time are UTC by definition.
        timestamps.parse_iso(
            pl.concat_str([pick("date"), pl.lit("T"), pick("time")]), naive_utc=True
        ).alias("ts"),
        pl.coalesce(pick("x-host-header"), pick("cs(host)")).alias("host"),
        pl.coalesce(first_forwarded(pick("x-forwarded-for")), pick("c-ip")).alias("client_ip"),
        _percent_decode(pick("cs(user-agent)")).alias("user_agent"),
        pick("cs-method").alias("method"),
        pick("cs-uri-stem").alias("path"),
        pick("cs-uri-query").alias("query"),
        pick("sc-status").alias("status"),
        pick("sc-bytes").alias("bytes"),
        (seconds * 1000.0).round(3).alias("duration_ms"),
        pick("x-edge-request-id").alias("request_id"),
        pl.when(error)
        .then(pl.coalesce(pick("x-edge-detailed-result-type"), result))
        .alias("message"),
        reject.alias("_reject"),
        pl.col(DIRECTIVE).alias("_skip"),
    )
    return schema.finish(out)


FORMATS: list[Format] = [
    Format("alb", parse_alb, "AWS Application Load Balancer access logs"),
    Format("cloudfront", parse_cloudfront, "Amazon CloudFront standard (legacy) access logs"),
    Format("s3", parse_s3, "Amazon S3 server access logs (error codes as message)"),
]
