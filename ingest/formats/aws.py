"""AWS access logs (tail -> **parse**): Application Load Balancer, CloudFront (legacy) and S3.

ALB and S3 lines have a fixed field order with AWS adding fields at the end over the years, so
one anchored regex per format captures the known fields and ignores whatever trails them.
CloudFront writes W3C-style `#Fields` headers over tab-separated values and reuses the w3c
header machinery, with AWS's documented field order as the fallback when no header is seen.
"""

from __future__ import annotations

import polars as pl

from ingest import schema, timestamps
from ingest.formats import Format, ParserState
from ingest.formats.w3c import (
    DIRECTIVE,
    HEADER,
    LINE,
    TOKENS,
    first_forwarded,
    read_directives,
)

# A double-quoted field; ALB and S3 do not escape quotes, but a `\"` must not end the field.
_QUOTED = r'"((?:[^"\\]|\\.)*)"'


def _q(name: str) -> str:
    return _QUOTED.replace("(", f"(?P<{name}>", 1)


# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html
# Fields after ssl_protocol arrived over the years (2018: request_creation_time ... error_reason,
# later target lists, classification, conn_trace_id, transform fields): all optional.
ALB = (
    r"^(?P<type>https?|h2|grpcs?|wss?) (?P<time>\S+) (?P<elb>\S+) (?P<client>\S+) (?P<target>\S+)"
    r" (?P<request_time>\S+) (?P<target_time>\S+) (?P<response_time>\S+)"
    r" (?P<elb_status>\S+) (?P<target_status>\S+) (?P<received>\S+) (?P<sent>\S+)"
    rf" {_q('request')} {_q('user_agent')} (?P<ssl_cipher>\S+) (?P<ssl_protocol>\S+)"
    rf"(?: (?P<target_group>\S+) {_q('trace_id')}"
    rf"(?: {_q('domain')} {_q('cert')} (?P<priority>\S+)"
    rf"(?: (?P<created>\S+) {_q('actions')} {_q('redirect')}(?: {_q('error')})?)?)?)?"
)

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/LogFormat.html
# Older logs stop after user_agent or version_id; newer ones append more after host_header.
S3 = (
    r"^(?P<owner>\S+) (?P<bucket>\S+) \[(?P<time>[^\]]+)\] (?P<remote_ip>\S+) (?P<requester>\S+)"
    r" (?P<request_id>\S+) (?P<operation>\S+) (?P<key>\S+)"
    rf" {_q('request')} (?P<status>\S+) (?P<error_code>\S+) (?P<bytes_sent>\S+)"
    rf" (?P<object_size>\S+) (?P<total_time>\S+) (?P<turn_around>\S+) {_q('referer')} {_q('ua')}"
    r"(?: (?P<version_id>\S+)(?: (?P<host_id>\S+) (?P<sig>\S+) (?P<cipher>\S+) (?P<auth>\S+)"
    r" (?P<host_header>\S+))?)?"
)

# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logs-reference.html
CLOUDFRONT_FIELDS = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer)"
    " cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header"
    " cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher"
    " x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port"
    " time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len"
    " sc-range-start sc-range-end"
).split()

# CloudFront percent-encodes spaces and a few other characters in user agents; `%25` goes last
# so `%2520` decodes once, to `%20`, as written.
_PERCENT = [("%20", " "), ("%22", '"'), ("%5C", "\\"), ("%3C", "<"), ("%3E", ">"), ("%25", "%")]

# `METHOD target PROTOCOL`; ALB writes `- http://host:80- -` for requests it could not parse.
_REQUEST = r"^(?P<method>\S+) (?P<target>.*?)(?: (?:HTTP/\S+|-))?$"
_URL_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(\[[^\]]*\]|[^/?#:@]+)"


def _blank(line: pl.Expr) -> pl.Expr:
    return line.str.strip_chars().fill_null("") == ""


def _request(line: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    parts = schema.absent_to_null(line).str.extract_groups(_REQUEST)
    return parts.struct.field("method"), parts.struct.field("target")


def _host_port(value: pl.Expr) -> pl.Expr:
    """`192.0.2.1:443` -> `192.0.2.1`; `[2001:db8::1]:443` -> `2001:db8::1`."""
    return value.str.replace(r"^\[([^\]]*)\]:\d+$", "$1").str.replace(r"^([^\[\]]*):\d+$", "$1")


def parse_alb(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    f = pl.col("f").struct.field
    method, target = _request(f("request"))
    times = [f(n).cast(pl.Float64, strict=False) for n in ("request_time", "target_time", "response_time")]
    # -1 means the load balancer could not dispatch, or the target did not answer: no duration.
    known = pl.all_horizontal([t >= 0 for t in times])
    duration = pl.when(known).then((pl.sum_horizontal(times) * 1000.0).round(3))
    out = pl.DataFrame({"line": lines.cast(pl.String)}).select(
        pl.col("line"), pl.col("line").str.extract_groups(ALB).alias("f")
    ).select(
        timestamps.parse_iso(f("time")).alias("ts"),
        pl.coalesce(schema.absent_to_null(f("domain")), target.str.extract(_URL_HOST, 1)).alias(
            "host"
        ),
        schema.absent_to_null(_host_port(f("client"))).alias("client_ip"),
        schema.absent_to_null(f("user_agent")).alias("user_agent"),
        schema.absent_to_null(method).alias("method"),
        target.alias("target"),
        f("elb_status").alias("status"),
        f("target_status").alias("upstream_status"),
        f("sent").alias("bytes"),
        duration.alias("duration_ms"),
        schema.absent_to_null(f("trace_id")).alias("request_id"),
        schema.absent_to_null(f("error")).alias("message"),
        pl.when(f("time").is_null()).then(pl.lit("not an alb access log line")).alias("_reject"),
        _blank(pl.col("line")).alias("_skip"),
    )
    return schema.finish(out)


def parse_s3(lines: pl.Series, state: ParserState) -> pl.DataFrame:
    f = pl.col("f").struct.field
    method, target = _request(f("request"))
    parsed = f("time").is_not_null()
    out = pl.DataFrame({"line": lines.cast(pl.String)}).select(
        pl.col("line"), pl.col("line").str.extract_groups(S3).alias("f")
    ).select(
        timestamps.parse_clf(f("time")).alias("ts"),
        pl.coalesce(schema.absent_to_null(f("host_header")), f("bucket")).alias("host"),
        schema.absent_to_null(f("remote_ip")).alias("client_ip"),
        schema.absent_to_null(f("ua")).alias("user_agent"),
        schema.absent_to_null(method).alias("method"),
        target.alias("target"),
        f("status").alias("status"),
        # S3 writes `-` for zero bytes sent.
        pl.when(f("bytes_sent") == "-").then(pl.lit("0")).otherwise(f("bytes_sent")).alias("bytes"),
        f("total_time").alias("duration_ms"),
        schema.absent_to_null(f("request_id")).alias("request_id"),
        schema.absent_to_null(f("error_code")).alias("message"),
        pl.when(~parsed).then(pl.lit("not an s3 access log line")).alias("_reject"),
        # Lifecycle and other internal actions (S3.EXPIRE.OBJECT, S3.TRANSITION.OBJECT, ...) are
        # logged too, with no HTTP request behind them.
        (_blank(pl.col("line")) | (parsed & f("operation").str.starts_with("S3."))).alias("_skip"),
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
        return schema.absent_to_null(doc.pick(*names))

    count = pl.col(TOKENS).list.len()
    expected = doc.field_count()
    result = pl.coalesce(pick("x-edge-result-type"), pick("x-edge-response-result-type"))
    error = (result == "Error") | (pick("x-edge-response-result-type") == "Error")
    seconds = pick("time-taken").cast(pl.Float64, strict=False)
    reject = (
        pl.when(pl.col(DIRECTIVE))
        .then(None)
        .when(pl.col(HEADER).is_null() | (count < 9))
        .then(pl.lit("not a cloudfront line"))
        .when(count < expected)
        .then(pl.format("cloudfront line has {} fields, its #Fields header names {}", count, expected))
    )
    out = frame.select(
        timestamps.parse_iso(pl.concat_str([pick("date"), pl.lit("T"), pick("time")])).alias("ts"),
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
