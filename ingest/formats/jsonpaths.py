"""Values at key paths of JSON lines (parse stage), for the JSON formats and container envelopes.

Each line is parsed once by DuckDB's JSON reader (`json_extract_string` of a list of exactly the
key paths a format reads), which never raises on a bad line, tolerates a key whose type changes
from line to line (`error` a string here, an object there) and is several times faster than
polars' `json_path_match` (one parse per key) or `json_decode` (raises on the first odd line).
The list form costs a third of `from_json` into a struct of the same keys: 2.7 against 9.6 ms
for a block of 132 ECS lines, 29 against 50 ms for 25,000 (its binding and planning).

Key paths are written `a/b/c` (nesting); an all-digit segment is an array index, and a dot is part
of a key, so `http.request.method` is the dotted key and `http/request/method` the nested one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import duckdb
import polars as pl

_LOCAL = threading.local()
_DATABASE: list[duckdb.DuckDBPyConnection] = []  # one in-memory database for the process
_OPENING = threading.Lock()


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the process's in-memory database (a DuckDB connection must not
    be used by two threads at once). A cursor costs next to nothing; a new database per thread
    cost ~20-40 ms, paid by every look of `watch` (a parse thread per file read)."""
    con: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "con", None)
    if con is None:
        with _OPENING:
            if not _DATABASE:
                _DATABASE.append(duckdb.connect(":memory:"))
            con = _DATABASE[0].cursor()
        _LOCAL.con = con
    return con


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _jsonpath(segments: Sequence[str]) -> str:
    return "$" + "".join(f"[{s}]" if s.isdigit() else '."' + s + '"' for s in segments)


def sql(query: str, frame: pl.DataFrame) -> pl.DataFrame:
    con = _connection()
    con.register("src", frame.to_arrow())
    try:
        result = pl.from_arrow(con.sql(query).to_arrow_table())
    finally:
        con.unregister("src")
    assert isinstance(result, pl.DataFrame)
    return result


def _plan(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The JSON paths of the anchors read from each line, and one SQL expression per path
    over their values (`v`, a list: `json_extract_string(line, [anchors])`, one parse a line).

    Each path is read through its shortest requested prefix that stops before any array index
    (its anchor), which comes back as a string or as JSON text; whatever lies below an anchor
    (`error/message` under `error`, `User-Agent/0`) is read from that text, so `error` may be a
    string here and an object there. A path that starts with an index is read from the line.
    """
    split = [p.split("/") for p in paths]
    heads = {tuple(s[: next((i for i, x in enumerate(s) if x.isdigit()), len(s))]) for s in split}
    anchors: dict[tuple[str, ...], int] = {}
    exprs = []
    for segments in split:
        anchor = next(
            (
                tuple(segments[:n])
                for n in range(1, len(segments) + 1)
                if tuple(segments[:n]) in heads
            ),
            (),
        )
        if not anchor:
            exprs.append(
                f"CASE WHEN valid THEN json_extract_string(line, {sql_text(_jsonpath(segments))})"
                " END"
            )
            continue
        access = f"v[{anchors.setdefault(anchor, len(anchors) + 1)}]"
        tail = segments[len(anchor) :]
        if tail:
            path = sql_text(_jsonpath(tail))
            access = (
                f"CASE WHEN json_valid({access}) THEN json_extract_string({access}, {path}) END"
            )
        exprs.append(access)
    return [_jsonpath(a) for a in anchors], exprs


def _present_keys(text: pl.Series, keys: Sequence[str]) -> set[str]:
    """Which of `keys` occur as `"key"` anywhere in the batch (a superset of the top-level keys).

    Reading a key costs DuckDB time even when no line has it; a log uses a handful of the many
    aliases a format knows. A strided sample names the common keys cheaply, one Aho-Corasick pass
    over the batch proves the others absent or finds the few lines that hold them.
    """
    quoted = {f'"{key}"': key for key in keys}
    step = max(1, len(text) // 512)
    found = set(text.gather_every(step).str.extract_many(list(quoted)).explode().drop_nulls())
    rest = [q for q in quoted if q not in found]
    if rest:
        holders = text.filter(text.str.contains_any(rest))
        if len(holders):
            found |= set(holders.str.extract_many(rest).explode().drop_nulls())
    return {quoted[q] for q in found}


def extract_present(text: pl.Series, paths: Sequence[str]) -> pl.DataFrame:
    """Columns for the `paths` whose first key occurs in the batch, plus `_json`."""
    candidate = text.str.contains(r"^[\s\ufeff]*\{")
    src = pl.DataFrame({"line": text}).select(pl.when(candidate).then(pl.col("line")).alias("line"))
    present = _present_keys(text, sorted({p.split("/")[0] for p in paths}))
    paths = [p for p in dict.fromkeys(paths) if p.split("/")[0] in present]
    anchors, exprs = _plan(paths)
    picks = "".join(f", {e} AS c{i}" for i, e in enumerate(exprs))
    listed = "[" + ", ".join(sql_text(a) for a in anchors) + "]"
    values = f"json_extract_string(line, {listed})" if anchors else "NULL::VARCHAR[]"
    query = (
        f"SELECT coalesce(valid, false) AS ok{picks} FROM (SELECT line, valid, "
        f"CASE WHEN valid THEN {values} END AS v FROM "
        "(SELECT line, json_valid(line) AS valid FROM src))"
    )
    got = sql(query, src)
    if len(got) != len(text):  # DuckDB keeps insertion order for a plain projection
        raise RuntimeError("JSON extraction changed the row count")
    kind = (
        pl.when(~candidate)
        .then(pl.lit("other"))
        .when(pl.col("ok"))
        .then(pl.lit("object"))
        .otherwise(pl.lit("invalid"))
    )
    return got.select(
        *[pl.col(f"c{i}").cast(pl.String).alias(p) for i, p in enumerate(paths)],
        kind.alias("_json"),
    )


def extract_json(lines: pl.Series, paths: Sequence[str]) -> pl.DataFrame:
    """The value at each key path of each line: one String column per path, plus `_json`.

    A string comes back unquoted, a number or boolean as its JSON text, an object or array as JSON
    text, JSON null or a missing key as null. `_json` is "object" for a JSON object, "invalid" for
    a line that starts like one but does not parse, "other" for anything else (arrays, scalars,
    plain text). Same length and order as `lines`.
    """
    got = extract_present(lines.cast(pl.String).fill_null(""), paths)
    return got.select(
        *[pl.col(p) if p in got.columns else pl.lit(None, pl.String).alias(p) for p in paths],
        pl.col("_json"),
    )
