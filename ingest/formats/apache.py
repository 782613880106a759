"""Parse step for a pasted Apache `LogFormat` (mod_log_config), also Tomcat's AccessLogValve pattern.

lines -> frame of canonical columns (see `ingest.schema`). `--format apache:'%h %l %u %t "%r" %>s
%b %D "%{X-Request-Id}i"'` compiles the format string to one anchored regex (a capture group per
directive that feeds a column) and the expressions that turn the captures into columns, like the
nginx `log_format` compiler. `%{format}t` strftime pieces are compiled too: their captures are
joined and read with one strptime, in the configured zone unless the format has `%z`.

Directives (https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats): `%h %a %{c}a`
client, `%A %p %P %k %X %l %u %L %H %f %R` fields, `%t %{format}t` time, `%r` or `%m %U %q`
request, `%s %>s %<s` status, `%b %B %O` bytes, `%D` (us) `%T` (s) `%{ms|us|s}T` duration,
`%v %V %{Host}i` host, `%{Header}i %{Header}o %{VAR}e %{Name}C %{Note}n` values (a request id
from X-Request-Id, X-Correlation-Id, UNIQUE_ID, ...). Status conditions (`%400,501{Referer}i`)
and `%%` are understood.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from conflictradar.ingest import schema
from conflictradar.ingest.formats import Format, ParseFn, ParserState, UnknownFormatError
from conflictradar.ingest.formats.clf import (
    blank,
    none_if_absent,
    run_query,
    valid_status,
    with_request,
)
from conflictradar.ingest.timestamps import from_local, parse_clf, parse_epoch

# The nicknames Apache's default httpd.conf defines, for `apache:combined` and friends.
NICKNAMES = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
    "combinedio": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %I %O',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
}

_DIRECTIVE = re.compile(r"%(!?[\d,]*)([<>]?)(?:\{([^}]*)\})?([<>]?)(\^t[io]|[a-zA-Z%])")

# Request and response headers that carry a request id, lower case.
REQUEST_ID_HEADERS = (
    "x-request-id", "x-correlation-id", "request-id", "x-amzn-trace-id", "x-b3-traceid",
    "x-cloud-trace-context",
)  # fmt: skip
REQUEST_ID_ENV = ("unique_id", "request_id")

_TOKEN = r"\S+"
_QUOTED = r'(?:[^"\\]|\\.)*'
_NUMBER = r"\d+|-"
# strftime conversions -> (regex, polars strptime conversion)
_STRFTIME = {
    "Y": (r"\d{4}", "%Y"), "y": (r"\d\d", "%y"), "m": (r"\d\d", "%m"), "d": (r"\d\d", "%d"),
    "e": (r" ?\d{1,2}", "%e"), "H": (r"\d\d", "%H"), "I": (r"\d\d", "%I"), "M": (r"\d\d", "%M"),
    "S": (r"\d\d", "%S"), "p": (r"[AaPp][Mm]", "%p"), "b": (r"[A-Za-z]{3}", "%b"),
    "h": (r"[A-Za-z]{3}", "%b"), "B": (r"[A-Za-z]+", "%B"), "a": (r"[A-Za-z]{3}", "%a"),
    "A": (r"[A-Za-z]+", "%A"), "j": (r"\d{3}", "%j"), "z": (r"[+-]\d\d:?\d\d|Z", "%z"),
    "T": (r"\d\d:\d\d:\d\d", "%H:%M:%S"),
    "F": (r"\d{4}-\d\d-\d\d", "%Y-%m-%d"), "D": (r"\d\d/\d\d/\d\d", "%m/%d/%y"),
    "R": (r"\d\d:\d\d", "%H:%M"), ".": (r"\.\d{3}", "%.3f"),
}  # fmt: skip
# Apache's own %{...}t tokens (2.4.13+), with an optional begin:/end: prefix.
_TIME_TOKENS = {
    "sec": (r"\d+", "epoch", 1.0), "msec": (r"\d+", "epoch", 1e-3), "usec": (r"\d+", "epoch", 1e-6),
    "msec_frac": (r"\d{3}", "%3f", 0.0), "usec_frac": (r"\d{6}", "%6f", 0.0),
}  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """One directive: its letter, `{argument}`, and the capture group name (None if unused)."""

    letter: str
    arg: str
    group: str | None


def parse_logformat(text: str) -> tuple[str | None, str]:
    """`LogFormat "<fmt>" nick`, `"<fmt>"`, `'<fmt>'`, a bare format or an Apache nickname ->
    (nickname, format string)."""
    spec = text.strip()
    head = re.match(r"(?i)(?:LogFormat|pattern\s*=)\s*", spec)
    if head:
        spec = spec[head.end() :]
    nick: str | None = None
    quoted = re.fullmatch(r'"((?:[^"\\]|\\.)*)"(?:\s+([\w.-]+))?\s*', spec, re.S)
    if quoted:
        nick = quoted.group(2)
        spec = re.sub(r'\\(["\\])', r"\1", quoted.group(1))
    elif len(spec) >= 2 and spec[0] == spec[-1] and spec[0] in "'\"":
        spec = spec[1:-1]
    if spec in NICKNAMES:
        return spec, NICKNAMES[spec]
    return nick, spec


def _strftime(fmt: str) -> tuple[str, str]:
    """A strftime format -> (regex, polars strptime format); literal text matched as written."""
    regex, parse = [], []
    pos = 0
    for m in re.finditer(r"%(\.3f|[a-zA-Z%])", fmt):
        regex.append(re.escape(fmt[pos : m.start()]))
        parse.append(fmt[pos : m.start()].replace("%", "%%"))
        pos = m.end()
        if m.group(1) == "%":
            regex.append("%")
            parse.append("%%")
            continue
        if m.group(1)[0] not in _STRFTIME:
            raise UnknownFormatError(
                f"apache LogFormat time %{{{fmt}}}t uses %{m.group(1)}, which cannot be read back;"
                " use %Y %m %d %H %M %S %b %z and the like"
            )
        value, conversion = _STRFTIME[m.group(1)[0]]
        regex.append(f"(?:{value})")
        parse.append(conversion)
    regex.append(re.escape(fmt[pos:]))
    parse.append(fmt[pos:].replace("%", "%%"))
    return "".join(regex), "".join(parse)


class _Compiler:
    def __init__(self) -> None:
        self.regex: list[str] = ["^"]
        self.pieces: list[Piece] = []
        self.times: list[tuple[str, str]] = []  # (group, strptime format or an epoch unit)

    def group(self, pattern: str, letter: str, arg: str) -> str:
        name = f"g{len(self.pieces)}"
        self.pieces.append(Piece(letter, arg, name))
        self.regex.append(f"(?P<{name}>{pattern})")
        return name

    def skip(self, pattern: str, letter: str, arg: str) -> None:
        self.pieces.append(Piece(letter, arg, None))
        self.regex.append(f"(?:{pattern})")


_USED_HEADERS = {"x-forwarded-for", "x-real-ip", "user-agent", "host", *REQUEST_ID_HEADERS}


def _feeds_a_column(letter: str, arg: str) -> bool:
    """Whether a header/env/log-id directive carries a value a canonical column reads."""
    return (
        letter == "L"
        or (letter in ("i", "o") and arg in _USED_HEADERS)
        or (letter == "e" and arg in REQUEST_ID_ENV)
    )


def compile_logformat(
    fmt: str, tomcat: bool = False
) -> tuple[str, list[Piece], list[tuple[str, str]]]:
    """The anchored regex for an Apache format string, its pieces and its time captures.

    `tomcat`: Tomcat's AccessLogValve letters (up to Tomcat 9): `%D` in milliseconds, `%S`
    session id, `%I` thread name, `%F` commit time, `%{x}c|r|s` cookie/attribute values and
    `%{SimpleDateFormat}t` times."""
    c = _Compiler()
    pos = 0
    matches = list(_DIRECTIVE.finditer(fmt))
    for i, m in enumerate(matches):
        literal = fmt[pos : m.start()]
        c.regex.append(re.escape(literal))
        pos = m.end()
        conditions, before, arg, after_mod, letter = m.groups()
        arg = arg or ""
        if letter == "%":
            c.regex.append("%")
            continue
        after = fmt[m.end() : matches[i + 1].start() if i + 1 < len(matches) else len(fmt)]
        quoted = literal.endswith('"') and after.startswith('"')
        last = i + 1 == len(matches) and not after.strip()
        loose = _QUOTED if quoted else (".*" if last else ".*?")
        if conditions:  # `%400,501{User-agent}i`: `-` when the status does not match
            loose = f"-|{loose}"
        if tomcat and letter in "SIF":
            c.skip(_QUOTED if quoted else r"\S*", letter, arg)
        elif tomcat and letter in "crs" and arg:
            c.skip(loose, letter, arg)
        elif tomcat and letter == "D":
            c.group(r"\d+", letter, "ms")
        elif letter == "t":
            _time(c, _simple_date(arg) if tomcat else arg)
        elif letter in ("h", "a"):
            c.group(_TOKEN, letter, arg)
        elif letter == "r":
            c.group(_QUOTED if quoted else r"\S+ \S+(?: \S+)?|-", letter, arg)
        elif letter == "s":  # `%>s` final status, `%<s` original, `%s` (final in Apache 2.4)
            c.group(r"\d{3}|-|0", letter, before or after_mod)
        elif letter in "bBIOS":
            c.group(_NUMBER, letter, arg)
        elif letter == "D":
            c.group(r"\d+", letter, arg)
        elif letter == "T":
            c.group(r"\d+(?:\.\d+)?", letter, arg)
        elif letter == "m":
            c.group(r"[A-Za-z][\w-]*|-", letter, arg)
        elif letter == "U":
            c.group(r'[^\s?"]*', letter, arg)
        elif letter == "q":
            c.group(r'(?:\?[^\s"]*)?', letter, arg)
        elif letter in "vV":
            c.group(_QUOTED if quoted else r"\S*", letter, arg)
        elif _feeds_a_column(letter, arg.lower()):
            c.group(loose, letter, arg.lower())
        elif letter in "AlupPkXHfR":
            c.skip(_QUOTED if quoted else r"\S*", letter, arg)
        elif letter in ("i", "o", "e", "C", "n", "^ti", "^to"):
            c.skip(loose, letter, arg)
        else:
            raise UnknownFormatError(
                f"apache LogFormat directive %{letter} is not known; see "
                "https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats"
            )
    # Fields appended after the pattern (a proxy adding its own) are tolerated, as for combined.
    c.regex.append(re.escape(fmt[pos:]) + r"(?:\s.*)?$")
    return "".join(c.regex), c.pieces, c.times


_SIMPLE_DATE = {
    "yyyy": "%Y", "yy": "%y", "MMM": "%b", "MM": "%m", "dd": "%d", "HH": "%H", "hh": "%I",
    "mm": "%M", "ss": "%S", "a": "%p", "Z": "%z", "XXX": "%z", "XX": "%z", "EEE": "%a",
}  # fmt: skip


def _simple_date(arg: str) -> str:
    """A Java SimpleDateFormat (Tomcat's `%{...}t`) as the strftime format Apache would use."""
    prefix = re.match(r"^(?:begin:|end:)?", arg)
    head = prefix.group(0) if prefix else ""
    body = arg[len(head) :]
    if body in _TIME_TOKENS or not body:
        return arg
    if "SSS" in body and ".SSS" not in body:
        raise UnknownFormatError(f"tomcat time %{{{arg}}}t: write milliseconds as .SSS")
    body = body.replace("%", "%%").replace(".SSS", "\x00")
    out = re.sub(r"y+|M+|d+|H+|h+|m+|s+|a|Z|X+|E+", lambda m: _SIMPLE_DATE.get(m.group(0),
                 m.group(0)), body)  # fmt: skip
    return head + out.replace("'", "").replace("\x00", "%.3f")


def _time(c: _Compiler, arg: str) -> None:
    if not arg:
        name = c.group(r"\[[^\]]+\]", "t", "")
        c.times.append((name, "clf"))
        return
    spec = re.sub(r"^(?:begin|end):", "", arg)
    if spec in _TIME_TOKENS:
        pattern, kind, scale = _TIME_TOKENS[spec]
        name = c.group(pattern, "t", spec)
        c.times.append((name, f"epoch:{scale}" if kind == "epoch" else kind))
        return
    pattern, strptime = _strftime(spec)
    name = c.group(pattern, "t", spec)
    c.times.append((name, strptime))


def apache_format(spec: str, tomcat: bool = False) -> Format:
    """Build a Format from a pasted Apache LogFormat (see `parse_logformat`), or from a Tomcat
    AccessLogValve pattern when `tomcat`."""
    kind = "tomcat" if tomcat else "apache"
    nick, fmt = parse_logformat(spec)
    if not fmt.strip():
        raise UnknownFormatError(f"{kind}: give the pattern string, e.g. {kind}:'%h %l %u %t ...'")
    regex, pieces, times = compile_logformat(fmt, tomcat)
    letters = {p.letter for p in pieces}
    if "s" not in letters:
        raise UnknownFormatError(
            f"{kind} pattern {fmt!r} has no %s or %>s, so its lines cannot be read as requests"
        )
    if not times:
        raise UnknownFormatError(
            f"{kind} pattern {fmt!r} has no %t or %{{format}}t, so its lines cannot be placed "
            "in time"
        )
    try:
        re.compile(regex)
    except re.error as exc:  # pragma: no cover - the compiler escapes every literal
        raise UnknownFormatError(f"{kind} pattern {fmt!r} cannot be compiled: {exc}") from exc
    label = f"{kind}:{nick}" if nick else kind
    return Format(label, _parser(regex, pieces, times), f"{kind} pattern {fmt}")


def _parser(regex: str, pieces: list[Piece], times: list[tuple[str, str]]) -> ParseFn:
    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        return schema.finish(run_query(lines, _query(regex, pieces, times)))

    return parse


def _unescape(value: pl.Expr) -> pl.Expr:
    return value.str.replace_all('\\"', '"', literal=True).str.replace_all(
        "\\\\", "\\", literal=True
    )


def _time_expr(m: Callable[[str], pl.Expr], times: list[tuple[str, str]]) -> pl.Expr:
    clf = [parse_clf(m(g)) for g, kind in times if kind == "clf"]
    epochs = [
        parse_epoch(m(g).cast(pl.Float64, strict=False) * float(kind.split(":")[1]))
        for g, kind in times
        if kind.startswith("epoch:")
    ]
    parts = [(g, kind) for g, kind in times if kind != "clf" and not kind.startswith("epoch:")]
    found: list[pl.Expr] = [*clf, *epochs]
    if parts and any(k not in ("%3f", "%6f") for _, k in parts):
        # Join the strftime pieces with a separator the values never hold; one strptime.
        text = pl.concat_str([m(g) for g, _ in parts], separator="\u241f")
        fmt = "\u241f".join(k for _, k in parts)
        if "%z" in fmt:
            found.append(text.str.strptime(schema.UTC_TS, fmt, strict=False))
        else:
            naive = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
            found.append(from_local(naive))
    elif parts and epochs:  # `%{sec}t.%{msec_frac}t`
        group, kind = parts[0]
        micros = m(group).cast(pl.Int64, strict=False) * (1000 if kind == "%3f" else 1)
        found = [*clf, epochs[0] + pl.duration(microseconds=micros)]
    return pl.coalesce(found) if found else pl.lit(None, schema.UTC_TS)


def _query(
    regex: str, pieces: list[Piece], times: list[tuple[str, str]]
) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    def build(lf: pl.LazyFrame) -> pl.LazyFrame:
        lf = lf.with_columns(
            pl.col("line").str.extract_groups(regex).alias("_m"),
            blank(pl.col("line")).alias("_skip"),
        )
        m = pl.col("_m").struct

        def field(group: str) -> pl.Expr:
            return none_if_absent(m.field(group))

        def first(*keys: tuple[str, str]) -> pl.Expr:
            """The first non-null capture among directives (letter, arg)."""
            found = [
                field(p.group) for k in keys for p in pieces if p.group and (p.letter, p.arg) == k
            ]
            return pl.coalesce(found) if found else pl.lit(None, pl.String)

        def final_status() -> pl.Expr:
            # `%>s` (final) beats `%s`, which Apache 2.4 logs as the final status too; `%<s` last.
            return first(("s", ">"), ("s", ""), ("s", "<"))

        matched = pl.coalesce([m.field(p.group) for p in pieces if p.letter == "s" and p.group])
        duration = [
            first(("D", "")).cast(pl.Float64, strict=False) / 1000.0,
            first(("D", "ms"), ("T", "ms")).cast(pl.Float64, strict=False),
            first(("T", "us")).cast(pl.Float64, strict=False) / 1000.0,
            first(("T", ""), ("T", "s")).cast(pl.Float64, strict=False) * 1000.0,
        ]
        request_id = [("i", h) for h in REQUEST_ID_HEADERS] + [("o", h) for h in REQUEST_ID_HEADERS]
        lf = lf.with_columns(
            _time_expr(m.field, times).alias("ts"),
            pl.coalesce(
                first(("i", "x-forwarded-for"))
                .str.splitn(",", 2)
                .struct.field("field_0")
                .str.strip_chars(),
                first(("i", "x-real-ip")),
                first(("a", "c"), ("h", "c"), ("a", ""), ("h", "")),
            ).alias("client_ip"),
            pl.coalesce(first(("v", ""), ("V", "")), first(("i", "host")))
            .str.replace(r":\d+$", "")
            .alias("host"),
            _unescape(first(("i", "user-agent"))).alias("user_agent"),
            valid_status(final_status()).alias("status"),
            pl.coalesce(first(("b", ""), ("B", "")), first(("O", "")))
            .cast(pl.Int64, strict=False)
            .alias("bytes"),
            pl.coalesce(duration).round(6).alias("duration_ms"),
            pl.coalesce(
                first(*request_id),
                first(*[("e", v) for v in REQUEST_ID_ENV]),
                first(("L", "")),
            ).alias("request_id"),
            _unescape(first(("r", ""))).alias("_request"),
            first(("m", "")).alias("_method"),
            first(("U", "")).alias("_upath"),
            first(("q", "")).str.strip_prefix("?").alias("_q"),
            pl.when(pl.col("_skip") | matched.is_not_null())
            .then(None)
            .otherwise(pl.lit("does not match the apache LogFormat"))
            .alias("_reject"),
        )
        lf = with_request(lf, "_request")
        return lf.select(
            "ts", "client_ip", "host", "user_agent", "status", "bytes", "duration_ms",
            "request_id", "_reject", "_skip",
            pl.coalesce("method", "_method").alias("method"),
            pl.coalesce("path", "_upath").alias("path"),
            pl.when(pl.col("path").is_not_null())
            .then("query")
            .otherwise(pl.when(pl.col("_q") != "").then("_q"))
            .alias("query"),
        )  # fmt: skip

    return build
