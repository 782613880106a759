"""Parse step for the Common Log Format family: combined, common, vcombined and nginx log_format.

lines -> frame of canonical columns (see `ingest.schema`). The fixed CLF formats are parsed by
splitting on quotes and spaces (several times faster in polars than one capturing regex); formats
built from an nginx `log_format` directive compile to one anchored regex.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ingest import schema
from ingest.formats import Format, ParseFn, ParserState, UnknownFormatError
from ingest.timestamps import parse_clf, parse_epoch, parse_iso

LazyParse = Callable[[pl.LazyFrame], pl.LazyFrame]

# Private-use characters that stand in for `\"` and `\\` while a line is split on quotes.
_ESC_QUOTE = "\ue000"
_ESC_BACKSLASH = "\ue001"

_METHOD_RE = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
_ORIGIN_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"
_IPV4_RE = r"^\d{1,3}(?:\.\d{1,3}){3},?$"


def run_query(lines: pl.Series, build: LazyParse) -> pl.DataFrame:
    """Run `build` over a one-column (`line`) frame of the lines.

    The streaming engine spreads the string work over all cores (measured on polars 2.1: about
    2x on 2 cores; slicing by hand and `pl.collect_all` gained nothing).
    """
    frame = pl.DataFrame({"line": lines.cast(pl.String)})
    return build(frame.lazy()).collect(engine="streaming")


def blank(line: pl.Expr) -> pl.Expr:
    """True for empty or whitespace-only lines, which every text format skips."""
    return line.is_null() | line.str.contains(r"^\s*$")


def parse_clf_fraction(text: pl.Expr) -> pl.Expr:
    """`parse_clf`, also for stamps with a fraction of a second (`05/Oct/2025:12:00:00.123 +0200`:
    HAProxy, Apache's `%{msec_frac}t`). Only values holding a `.` take the slower path."""
    odd = pl.when(text.str.contains(".", literal=True)).then(text)
    micros = (
        odd.str.extract(r":\d\d\.(\d+)", 1)
        .str.slice(0, 6)
        .str.pad_end(6, "0")
        .cast(pl.Int64, strict=False)
    )
    whole = parse_clf(odd.str.replace(r"(:\d\d)\.\d+", "${1}"))
    return pl.coalesce(parse_clf(text), whole + pl.duration(microseconds=micros))


def none_if_absent(expr: pl.Expr) -> pl.Expr:
    """`-` or empty -> null; cheaper than `schema.absent_to_null` for fields that use only those."""
    return pl.when(expr.is_in(["-", ""])).then(None).otherwise(expr)


def valid_status(text: pl.Expr) -> pl.Expr:
    """An HTTP status from text; anything outside 100-599 (`-`, `0`, `-1`) is null."""
    status = text.cast(pl.Int16, strict=False)
    return pl.when(status.is_between(100, 599)).then(status)


def with_request(lf: pl.LazyFrame, request: str) -> pl.LazyFrame:
    """Add `method`, `path`, `query` from the request-line column `request` (`GET /a?b=1 HTTP/1.1`).

    A request line whose first word is not a method (`-`, TLS bytes, garbage) gives nulls.
    Staged so each split runs once.
    """
    lf = lf.with_columns(pl.col(request).str.splitn(" ", 3).alias("_rq"))
    method = pl.col("_rq").struct.field("field_0")
    ok = method.str.contains(_METHOD_RE)
    lf = lf.with_columns(
        pl.when(ok).then(method).alias("method"),
        pl.when(ok).then(pl.col("_rq").struct.field("field_1")).alias("_target"),
    )
    return with_target(lf.drop("_rq"), "_target")


def with_target(lf: pl.LazyFrame, target: str) -> pl.LazyFrame:
    """Add `path` and `query` from the request-target column `target`, then drop it.

    Absolute-form targets lose scheme and host; same result as `schema.split_target` for request
    lines at a fraction of its cost.
    """
    lf = lf.with_columns(
        none_if_absent(pl.col(target)).str.replace(_ORIGIN_RE, "").str.splitn("?", 2).alias("_pq")
    )
    path = pl.col("_pq").struct.field("field_0")
    query = pl.col("_pq").struct.field("field_1")
    return lf.with_columns(
        pl.when(path == "").then(pl.lit("/")).otherwise(path).alias("path"),
        pl.when(query == "").then(None).otherwise(query).alias("query"),
    ).drop("_pq", target)


def _unescape(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(_ESC_QUOTE, '"', literal=True).str.replace_all(
        _ESC_BACKSLASH, "\\", literal=True
    )


def _clf_query(kind: str, escaped: bool, quoted_chain: bool) -> LazyParse:
    """The lazy query for `combined`, `common` or `vcombined` lines.

    `host ip ident user [time] "request" status bytes "referer" "agent" extra...` is split on
    `"`; the parts before the request carry the client (optionally preceded by a virtual host
    or an X-Forwarded-For chain), the part after it status and bytes.
    """

    def build(lf: pl.LazyFrame) -> pl.LazyFrame:
        line = pl.col("line")
        if escaped:
            line = line.str.replace_all("\\\\", _ESC_BACKSLASH, literal=True).str.replace_all(
                '\\"', _ESC_QUOTE, literal=True
            )
        if quoted_chain:
            # nginx `"$http_x_forwarded_for" $remote_addr - ...`: unquote the leading chain.
            line = line.str.replace(r'^"([^"]*)" ', "$1 ")
        q = pl.col("_q").struct
        lf = lf.with_columns(
            line.str.splitn('"', 8).alias("_q"), blank(pl.col("line")).alias("_skip")
        )
        lf = lf.select(
            "_skip",
            q.field("field_0").str.splitn(" [", 2).alias("_head"),
            (_unescape(q.field("field_1")) if escaped else q.field("field_1")).alias("_request"),
            q.field("field_2").str.strip_chars().str.splitn(" ", 3).alias("_mid"),
            pl.when(q.field("field_4") == " ").then(q.field("field_5")).alias("_agent"),
            q.field("field_6").alias("_tail6"),
            q.field("field_7").alias("_tail7"),
        )
        lf = with_request(lf, "_request")
        head = pl.col("_head").struct
        lf = lf.with_columns(
            head.field("field_0").str.splitn(" ", 3).alias("_remote"),
            head.field("field_1").alias("_time"),
            head.field("field_0").str.contains(",", literal=True).alias("_chain"),
        )
        remote = pl.col("_remote").struct
        first, second, rest = (remote.field(f"field_{i}") for i in range(3))
        # Two tokens before ident and user: `vhost client` (Apache %v or %v:%p) ...
        lf = lf.with_columns(
            (rest.str.contains(" ", literal=True) & ~pl.col("_chain") & ~first.str.starts_with('"'))
            .fill_null(False)
            .alias("_two")
        )
        two = pl.col("_two")
        if kind == "vcombined":
            vhost = two & (rest.str.count_matches(" ", literal=True) == 1)
        else:
            # ... unless the first is an address: nginx's `$http_x_forwarded_for $remote_addr`.
            candidate = pl.when(two).then(first)
            address = candidate.str.contains(_IPV4_RE) | (
                candidate.str.count_matches(":", literal=True) >= 2
            )
            vhost = two & ~address.fill_null(False)
        lf = lf.with_columns(vhost.alias("_vhost"))
        vhost = pl.col("_vhost")
        time = pl.col("_time")
        ok = pl.col("_mid").is_not_null() & time.str.ends_with("] ")
        if kind == "vcombined":
            ok = ok & vhost
        mid = pl.col("_mid").struct
        columns = [
            parse_clf_fraction(time.str.strip_suffix("] ")).alias("ts"),
            pl.when(vhost).then(first).str.replace(r":\d+$", "").alias("host"),
            none_if_absent(
                pl.when(vhost).then(second).otherwise(first.str.strip_chars('",\ufeff'))
            ).alias("client_ip"),
            "method",
            "path",
            "query",
            valid_status(mid.field("field_0")).alias("status"),
            mid.field("field_1").cast(pl.Int64, strict=False).alias("bytes"),
            pl.when(pl.col("_skip") | ok)
            .then(None)
            .otherwise(pl.lit(f"not a {kind} line"))
            .alias("_reject"),
            "_skip",
        ]
        if kind != "common":
            agent = _unescape(pl.col("_agent")) if escaped else pl.col("_agent")
            columns.append(none_if_absent(agent).alias("user_agent"))
            columns.append(_trailing_duration().alias("duration_ms"))
        return lf.select(columns)

    return build


def _trailing_duration() -> pl.Expr:
    """Duration from fields after the user agent: Traefik's `... "router" "url" 12ms`, or a
    bare nginx `$request_time` in seconds (always three decimals) right after the agent."""
    traefik = pl.col("_tail7").str.extract(r" (\d+(?:\.\d+)?)ms\s*$", 1).cast(pl.Float64)
    seconds = pl.col("_tail6").str.extract(r"^ (\d+\.\d{3})(?:\s|$)", 1).cast(pl.Float64)
    return pl.coalesce(traefik, seconds * 1000.0)


def _clf_parser(kind: str) -> ParseFn:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        # Escaped quotes are rare; only then pay for substituting them before the split.
        escaped = bool(lines.str.contains("\\", literal=True).any())
        quoted_chain = bool(lines.str.starts_with('"').any())
        return schema.finish(run_query(lines, _clf_query(kind, escaped, quoted_chain)))

    return parse


# --- nginx log_format ------------------------------------------------------------------------

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
        *("status", "upstream_status", "body_bytes_sent", "bytes_sent", "request_time"),
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
        return Format(label, _clf_parser("combined"), "nginx combined log_format")
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

        lf = lf.with_columns(
            pl.coalesce(
                [
                    parse_clf_fraction(fields.get("time_local", pl.lit(None, pl.String))),
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
            valid_status(first("upstream_status").str.extract(r"(\d{3})\D*$", 1)).alias(
                "upstream_status"
            ),
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


# The reasons `schema.finish` gives: the line had the format's shape but a bad value, so
# another shape should not be tried.
_VALUE_REJECTS = ["no valid timestamp", "no valid status"]


def first_match(parsers: list[ParseFn], reason: str) -> ParseFn:
    """A parser trying each of `parsers` in turn on the lines the earlier ones could not shape.

    Lines none of them can shape are rejected with `reason`.
    """

    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        frame = parsers[0](lines, state)
        for parser in parsers[1:]:
            retry = frame["_reject"].is_not_null() & ~frame["_reject"].is_in(_VALUE_REJECTS)
            if not retry.any():
                break
            index = retry.arg_true()
            again = parser(lines.gather(index), state)
            frame = pl.DataFrame([frame[c].clone().scatter(index, again[c]) for c in frame.columns])
        shapeless = frame["_reject"].is_not_null() & ~frame["_reject"].is_in(_VALUE_REJECTS)
        return frame.with_columns(
            pl.when(shapeless).then(pl.lit(reason)).otherwise(pl.col("_reject")).alias("_reject")
        )

    return parse


FORMATS: list[Format] = [
    Format("vcombined", _clf_parser("vcombined"), "Apache combined with a %v or %v:%p prefix"),
    Format("combined", _clf_parser("combined"), "nginx/Apache combined, extra fields tolerated"),
    Format("common", _clf_parser("common"), "nginx/Apache common log format"),
    Format(
        "nginx-proxy-manager",
        first_match(
            [
                nginx_format(NPM_PROXY).parse,
                nginx_format(NPM_STANDARD).parse,
                _clf_parser("combined"),
            ],
            "not a Nginx Proxy Manager line",
        ),
        "Nginx Proxy Manager's proxy and standard log formats",
    ),
]
