"""Parse step for nginx `log_format` directives and the Nginx Proxy Manager formats built on them.

lines -> frame of canonical columns (see `ingest.schema`). A pasted directive compiles to one
anchored regex whose named groups feed the canonical columns; nginx's predefined combined format
uses the faster CLF parser instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import Format, ParseFn, ParserState, UnknownFormatError
from conflictradar.ingest.formats.clf import (
    LazyParse,
    blank,
    clf_parser,
    first_match,
    none_if_absent,
    run_query,
    valid_status,
    with_request,
    with_target,
)
from conflictradar.ingest.timestamps import parse_clf, parse_epoch, parse_iso

NGINX_COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)

# Value patterns of the variables whose spelling is known; any other variable matches lazily
# up to the literal text that follows it.
_LIST_SEP = r"(?:, | : )"
_VARIABLE_RE = {
    "time_local": r"\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4}",
    "time_iso8601": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)",
    "msec": r"\d+(?:\.\d+)?",
    "status": r"\d{3}",
    "body_bytes_sent": r"\d+|-",
    "bytes_sent": r"\d+|-",
    "request_time": r"\d+(?:\.\d+)?|-",
    "upstream_status": rf"(?:\d{{3}}|-)(?:{_LIST_SEP}(?:\d{{3}}|-))*",
    "upstream_response_time": rf"(?:[\d.]+|-)(?:{_LIST_SEP}(?:[\d.]+|-))*",
    "upstream_addr": rf"[^\s\"]+(?:{_LIST_SEP}[^\s\"]+)*",
    "remote_addr": r"[^\s\"]+",
    "host": r"[^\s/\"]*",
    "http_host": r"[^\s/\"]*",
    "server_name": r"[^\s/\"]*",
}

# Variables that feed a canonical column (see `_nginx_query` for which wins when several do).
_CAPTURED = frozenset(
    {
        *("time_local", "time_iso8601", "msec"),
        *("remote_addr", "http_x_forwarded_for", "http_x_real_ip"),
        *("request", "request_method", "request_uri", "uri", "args", "query_string"),
        *("status", "upstream_status", "upstream_addr", "body_bytes_sent", "bytes_sent"),
        "request_time",
        *("http_user_agent", "host", "http_host", "server_name"),
        *("http_x_request_id", "request_id", "req_id"),
    }
)

_TOKEN_RE = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^\s'"]+))""", re.S)
_VAR_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class LogFormat:
    """A parsed nginx `log_format` directive."""

    name: str | None
    escape: str
    template: str


def parse_directive(directive: str) -> LogFormat:
    """`log_format main escape=json '...' '...';`, `main '...'`, `'...'` or a bare template.

    Quoted pieces are concatenated as nginx does. A bare `combined` means nginx's predefined
    combined format.
    """
    text = directive.strip().rstrip(";").strip()
    name: str | None = None
    escape = "default"
    head = re.match(r"log_format\s+([^\s'\"]+)\s*", text)
    if head:
        name, text = head.group(1), text[head.end() :]
    elif re.fullmatch(r"[A-Za-z_][\w.-]*", text):
        return LogFormat(text, escape, NGINX_COMBINED if text == "combined" else "")
    else:
        named = re.match(r"([A-Za-z_][\w.-]*)\s+(?=['\"]|escape=)", text)
        if named:
            name, text = named.group(1), text[named.end() :]
    option = re.match(r"escape=(\w+)\s*", text)
    if option:
        escape, text = option.group(1), text[option.end() :]
        if escape not in ("default", "json", "none"):
            raise UnknownFormatError(
                f"nginx log_format option escape={escape} is not one of default, json, none"
            )
    if not text.startswith(("'", '"')):
        return LogFormat(name, escape, text)
    pieces: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        single, double, bare = match.groups()
        piece = single if single is not None else double if double is not None else bare
        pieces.append(re.sub(r"\\(.)", r"\1", piece or ""))
    return LogFormat(name, escape, "".join(pieces))


def compile_template(template: str, escape: str) -> tuple[str, list[str]]:
    """The anchored regex for a log_format template and the variables it captures, in order."""
    items: list[tuple[str, str]] = []  # ("lit", text) or ("var", name)
    pos = 0
    for match in _VAR_RE.finditer(template):
        if match.start() > pos:
            items.append(("lit", template[pos : match.start()]))
        items.append(("var", match.group(1) or match.group(2)))
        pos = match.end()
    if pos < len(template):
        items.append(("lit", template[pos:]))
    regex = ["^"]
    captured: list[str] = []
    for i, (kind, text) in enumerate(items):
        if kind == "lit":
            regex.append(re.escape(text))
            continue
        before = items[i - 1][1] if i > 0 and items[i - 1][0] == "lit" else ""
        after = items[i + 1][1] if i + 1 < len(items) and items[i + 1][0] == "lit" else ""
        if text in _VARIABLE_RE:
            value = _VARIABLE_RE[text]
        elif before.endswith('"') and after.startswith('"') and escape != "none":
            value = r'(?:[^"\\]|\\.)*'  # nginx escapes `"` in a value (\x22 or \")
        elif i + 1 == len(items):
            value = ".*"
        else:
            value = ".*?"
        if text in _CAPTURED and text not in captured:
            captured.append(text)
            regex.append(f"(?P<{text}>{value})")
        else:
            regex.append(f"(?:{value})")
    return "".join(regex), captured


def nginx_format(directive: str) -> Format:
    """Build a Format from a pasted nginx `log_format` directive (see `parse_directive`)."""
    spec = parse_directive(directive)
    if not spec.template:
        raise UnknownFormatError(
            f"nginx:{spec.name} names a log_format without giving it; paste the whole "
            f"`log_format {spec.name} '...'` directive"
        )
    label = f"nginx:{spec.name}" if spec.name else "nginx"
    variables = {m.group(1) or m.group(2) for m in _VAR_RE.finditer(spec.template)}
    if "status" not in variables:
        raise UnknownFormatError(
            f"nginx log_format {spec.name or spec.template!r} has no $status variable, "
            "so its lines cannot be read as requests"
        )
    if not variables & {"time_local", "time_iso8601", "msec"}:
        raise UnknownFormatError(
            f"nginx log_format {spec.name or spec.template!r} has no $time_local, "
            "$time_iso8601 or $msec variable, so its lines cannot be placed in time"
        )
    if " ".join(spec.template.split()) == NGINX_COMBINED:
        return Format(label, clf_parser("combined"), "nginx combined log_format")
    regex, captured = compile_template(spec.template, spec.escape)
    summary = f"nginx log_format {spec.name or ''}".strip()
    return Format(label, _regex_parser(regex, captured, spec.escape == "json"), summary)


def _regex_parser(regex: str, captured: list[str], json_escaped: bool) -> ParseFn:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        return schema.finish(run_query(lines, _nginx_query(regex, captured, json_escaped)))

    return parse


def _nginx_query(regex: str, captured: list[str], json_escaped: bool) -> LazyParse:
    def build(lf: pl.LazyFrame) -> pl.LazyFrame:
        lf = lf.with_columns(
            pl.col("line").str.extract_groups(regex).alias("_m"),
            blank(pl.col("line")).alias("_skip"),
        )
        matched = pl.col("_m").struct.field("status").is_not_null()
        fields = {v: _field(pl.col("_m").struct.field(v), json_escaped) for v in captured}

        def first(*names: str) -> pl.Expr:
            present = [fields[n] for n in names if n in fields]
            return pl.coalesce(present) if present else pl.lit(None, pl.String)

        no_upstream = (
            pl.col("_m").struct.field("upstream_addr").str.strip_chars() == "-"
            if "upstream_addr" in captured
            else pl.lit(False)
        )

        lf = lf.with_columns(
            pl.coalesce(
                [
                    parse_clf(fields.get("time_local", pl.lit(None, pl.String))),
                    parse_iso(fields.get("time_iso8601", pl.lit(None, pl.String))),
                    parse_epoch(fields.get("msec", pl.lit(None, pl.String))),
                ]
            ).alias("ts"),
            pl.coalesce(
                first("http_x_forwarded_for")
                .str.splitn(",", 2)
                .struct.field("field_0")
                .str.strip_chars(),
                first("http_x_real_ip", "remote_addr"),
            ).alias("client_ip"),
            first("host", "http_host", "server_name").alias("host"),
            first("http_user_agent").alias("user_agent"),
            valid_status(first("status")).alias("status"),
            pl.coalesce(
                valid_status(first("upstream_status").str.extract(r"(\d{3})\D*$", 1)),
                # `$upstream_addr` logged as `-`: nginx answered without reaching an upstream
                # (SPEC 5 rule 1), recorded as upstream status 0 like Envoy's `-` host.
                pl.when(no_upstream).then(pl.lit(0)),
            ).alias("upstream_status"),
            first("body_bytes_sent", "bytes_sent").cast(pl.Int64, strict=False).alias("bytes"),
            (first("request_time").cast(pl.Float64, strict=False) * 1000.0).alias("duration_ms"),
            first("http_x_request_id", "request_id", "req_id").alias("request_id"),
            first("request").alias("_request"),
            first("request_method").alias("_method"),
            first("request_uri").alias("_uri_target"),
            first("uri").alias("_uri"),
            first("args", "query_string").alias("_args"),
            pl.when(pl.col("_skip") | matched)
            .then(None)
            .otherwise(pl.lit("does not match the nginx log_format"))
            .alias("_reject"),
        )
        lf = with_request(lf, "_request")
        lf = lf.rename({"method": "_rmethod", "path": "_rpath", "query": "_rquery"})
        lf = with_target(lf, "_uri_target")
        return lf.select(
            "ts",
            "client_ip",
            "host",
            "user_agent",
            "status",
            "upstream_status",
            "bytes",
            "duration_ms",
            "request_id",
            "_reject",
            "_skip",
            pl.coalesce("_rmethod", "_method").alias("method"),
            pl.coalesce("_rpath", "path", "_uri").alias("path"),
            pl.when(pl.col("_rpath").is_not_null())
            .then("_rquery")
            .when(pl.col("path").is_not_null())
            .then("query")
            .otherwise(none_if_absent(pl.col("_args")))
            .alias("query"),
        )

    return build


def _field(value: pl.Expr, json_escaped: bool) -> pl.Expr:
    value = none_if_absent(value)
    if json_escaped:
        value = value.str.replace_all('\\"', '"', literal=True).str.replace_all(
            "\\\\", "\\", literal=True
        )
    return value


# --- built-in formats -------------------------------------------------------------------------

# The two log_format directives Nginx Proxy Manager ships (docker/rootfs/etc/nginx/nginx.conf):
# `proxy` for proxy hosts, `standard` for redirection and dead hosts.
NPM_PROXY = (
    "log_format proxy '[$time_local] $upstream_cache_status $upstream_status $status - "
    '$request_method $scheme $host "$request_uri" [Client $remote_addr] '
    "[Length $body_bytes_sent] [Gzip $gzip_ratio] [Sent-to $server] "
    '"$http_user_agent" "$http_referer"\';'
)
NPM_STANDARD = (
    "log_format standard '[$time_local] $status - $request_method $scheme $host "
    '"$request_uri" [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] '
    '"$http_user_agent" "$http_referer"\';'
)


FORMATS: list[Format] = [
    Format(
        "nginx-proxy-manager",
        first_match(
            [
                nginx_format(NPM_PROXY).parse,
                nginx_format(NPM_STANDARD).parse,
                clf_parser("combined"),
            ],
            "not a Nginx Proxy Manager line",
        ),
        "Nginx Proxy Manager's proxy and standard log formats",
    ),
]
