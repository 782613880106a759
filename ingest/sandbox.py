"""The read-only SQL surface shared by `conflictradar sql`, the dashboard's SQL page and the
internal read queries, wherever they run: a reader's own connection or the watcher's.

Three fences, each enough alone for a write, together for everything else:
- the statement: exactly one SELECT by DuckDB's own parser, and its parsed tree
  (`json_serialize_sql`) holds only reading query nodes. A data-modifying CTE
  (`WITH x AS (DELETE ... RETURNING 1) SELECT ...`) is typed as a SELECT statement, so the
  type alone is not enough; its tree holds a DELETE_QUERY_NODE. Table functions that act
  (`checkpoint`) or run SQL the tree cannot show (`query`) are refused by name.
- the transaction: every query runs in `BEGIN TRANSACTION READ ONLY`, always rolled back, so a
  write that got past the tree fails at execution ("transaction is launched in read-only
  mode"), on the watcher's read-write connection as on a read-only one.
- the connection: external access disabled (no files, network, extensions; no spill directory
  to read through a planted `<db>.tmp` symlink) and its configuration locked.
A timer interrupts a runaway query; results stop at a row cap; memory is capped by the
connection's `memory_limit`: a reader's own connection, and the watcher's whole connection, get
`sql.memory_limit` (DuckDB has no per-query cap; `operator_memory_limit` does not bound a
string_agg). On the watcher, served user SQL runs one query at a time (ingest.serve), and a batch
whose allocation loses against a query that fills the pool is read again on the next poll (its
offset commits with its rows). A reserve for ingest on top did not hold: with 2 GB + 512 MB the
`string_agg(repeat('x', 1000000))` probe grew the watcher to 2.3 GB before failing; with 2 GB it
fails at 1.1 GB.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from conflictradar.ingest.database import connect
from conflictradar.ingest.errors import DatabaseError, QueryRefusedError
from conflictradar.ingest.settings import SqlSettings

Params = Sequence[object] | Mapping[str, object] | None

# Query nodes a reading query is made of; anything else in the tree (DELETE_QUERY_NODE,
# INSERT_QUERY_NODE, UPDATE_QUERY_NODE, a COPY or MERGE node...) is refused.
READING_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
# Table and scalar functions refused by name: they act on the database (checkpoint) or run SQL
# text the statement tree cannot show (query).
REFUSED_FUNCTIONS = frozenset({"checkpoint", "force_checkpoint", "query"})
# Internal read queries (the dashboard's, the alerts') are bounded too, more generously.
INTERNAL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows existed than the cap allowed
    elapsed_s: float


def uncapped(sql: SqlSettings) -> SqlSettings:
    """The same limits without the row cap: exports (`sql --output`, pipes) get every row."""
    return replace(sql, max_rows=1 << 62)


def sandbox_config(sql: SqlSettings) -> dict[str, Any]:
    """A reader's connection: no files, network, extensions or settings, and no spill
    directory (DuckDB lets a sandboxed connection read its temp directory, and follows a
    symlink planted there)."""
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "memory_limit": sql.memory_limit,
        "temp_directory": "",
        "threads": 2,
        "lock_configuration": True,
    }


_parser_lock = threading.Lock()
_parser: list[duckdb.DuckDBPyConnection] = []


@contextmanager
def _parsing() -> Iterator[duckdb.DuckDBPyConnection]:
    """An empty in-memory connection, sandboxed, used only to parse: a refusal never opens (or
    waits for) the database."""
    with _parser_lock:
        if not _parser:
            config = {**sandbox_config(SqlSettings(memory_limit="256MB")), "threads": 1}
            config.pop("lock_configuration")
            _parser.append(duckdb.connect(":memory:", config=config))
            _parser[0].execute("SET lock_configuration = true")
        yield _parser[0]


# Texts already found to be one reading SELECT, and that statement: the verdict depends on the
# text alone, and the dashboard and alerts send the same few texts (values go as parameters)
# again and again, so each is parsed once, not on every read.
_passed: OrderedDict[str, str] = OrderedDict()
PASSED_MAX = 256  # texts remembered
PASSED_MAX_CHARS = 16_384  # longer texts are checked every time


def check_statement(text: str) -> str:
    """The single reading SELECT in `text`, or a QueryRefusedError saying why not."""
    with _parsing() as con:
        if (known := _passed.get(text)) is not None:
            _passed.move_to_end(text)
            return known
        statement = _check(con, text)
        if len(text) <= PASSED_MAX_CHARS:
            _passed[text] = statement
            if len(_passed) > PASSED_MAX:
                _passed.popitem(last=False)
        return statement


def _check(con: duckdb.DuckDBPyConnection, text: str) -> str:
    if not text.strip():
        raise QueryRefusedError("the query is empty")
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"the query does not parse: {first_line(exc)}") from exc
    if len(statements) != 1:
        raise QueryRefusedError(f"only one statement is allowed per query, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).rsplit(".", 1)[-1]
        raise QueryRefusedError(
            f"only SELECT queries are allowed here (read-only); this is a {name} statement"
        )
    _check_tree(con, text)
    return text


def _check_tree(con: duckdb.DuckDBPyConnection, text: str) -> None:
    try:
        row = con.execute("SELECT json_serialize_sql($1::VARCHAR)", [text]).fetchone()
        tree = json.loads(row[0]) if row else {"error": True}
    except (duckdb.Error, ValueError, RecursionError) as exc:
        raise QueryRefusedError(f"the query cannot be checked: {first_line(exc)}") from exc
    if tree.get("error"):
        reason = str(tree.get("error_message") or "it is not a plain SELECT")
        raise QueryRefusedError(
            f"only plain SELECT queries are allowed here; {reason.rstrip('!.')}"
        )
    nodes, functions = _walk(tree)
    writing = sorted(nodes - READING_NODES)
    if writing:
        what = writing[0].removesuffix("_NODE").removesuffix("_QUERY").replace("_", " ")
        raise QueryRefusedError(
            f"only reading queries are allowed here (read-only); this one contains a {what}"
        )
    refused = sorted(functions & REFUSED_FUNCTIONS)
    if refused:
        raise QueryRefusedError(f"the function {refused[0]}() is not allowed here (read-only)")


def _walk(tree: object) -> tuple[set[str], set[str]]:
    """Every query node type and every function name in a serialized statement tree."""
    nodes: set[str] = set()
    functions: set[str] = set()
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get("type")
            if isinstance(kind, str) and kind.endswith("_NODE"):
                nodes.add(kind)
            name = item.get("function_name")
            if isinstance(name, str):
                functions.add(name.lower())
            if kind == "TABLE_FUNCTION" and isinstance(item.get("function"), dict):
                inner = item["function"].get("function_name")
                if isinstance(inner, str):
                    functions.add(inner.lower())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return nodes, functions


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_readonly(path: Path, sql: SqlSettings, wait_s: float = 5.0) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise DatabaseError(
            f"database {path} does not exist yet; run `conflictradar ingest PATH` first"
        )
    return connect(path, read_only=True, wait_s=wait_s, config=sandbox_config(sql))


@contextmanager
def read_only_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in a read-only transaction that is always rolled back."""
    try:
        con.execute("BEGIN TRANSACTION READ ONLY")
    except duckdb.Error as exc:
        raise DatabaseError(f"cannot start a read-only transaction: {first_line(exc)}") from exc
    try:
        yield
    finally:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # never leave the transaction open: end the connection's work
            with contextlib.suppress(duckdb.Error):
                con.interrupt()
                con.execute("ROLLBACK")


@contextmanager
def _deadline(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[threading.Timer]:
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield timer
    finally:
        timer.cancel()


def read_query(
    con: duckdb.DuckDBPyConnection, text: str, params: Params = None,
    timeout_s: float = INTERNAL_TIMEOUT_S,
) -> pa.Table:  # fmt: skip
    """A trusted (internal) read query, through the same fences as a user's."""
    check_statement(text)
    with read_only_transaction(con), _deadline(con, timeout_s) as timer:
        try:
            return con.sql(text, params=params).to_arrow_table()
        except duckdb.Error as exc:
            if not timer.is_alive() and "interrupt" in str(exc).lower():
                raise DatabaseError(f"read query cancelled after {timeout_s:g} s") from exc
            raise DatabaseError(f"read query failed: {first_line(exc)}") from exc


def run_query(con: duckdb.DuckDBPyConnection, text: str, sql: SqlSettings) -> QueryResult:
    """Run a user's SELECT through the fences, with the time limit and the row cap."""
    check_statement(text)
    started = time.perf_counter()
    with read_only_transaction(con), _deadline(con, sql.timeout_s) as timer:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                con.execute(text)
                reader = con.to_arrow_reader(min(sql.max_rows + 1, 100_000))
                if reader is None:
                    raise QueryRefusedError("the query returned no result set")
                batches = []
                rows = 0
                try:
                    for batch in reader:
                        batches.append(batch)
                        rows += batch.num_rows
                        if rows > sql.max_rows:
                            break
                finally:
                    reader.close()  # an open result would keep the transaction from ending
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException as exc:
            raise _timed_out(sql) from exc
        except duckdb.OutOfMemoryException as exc:
            raise _too_big(sql) from exc
        except duckdb.Error as exc:
            if not timer.is_alive() and "interrupt" in str(exc).lower():
                raise _timed_out(sql) from exc
            if "out of memory" in str(exc).lower():
                raise _too_big(sql) from exc
            raise QueryRefusedError(f"the query failed: {first_line(exc)}") from exc
    truncated = table.num_rows > sql.max_rows
    if truncated:
        table = table.slice(0, sql.max_rows)
    return QueryResult(table, truncated, time.perf_counter() - started)


def _timed_out(sql: SqlSettings) -> QueryRefusedError:
    return QueryRefusedError(f"the query was cancelled after the {sql.timeout_s:g} s time limit")


def _too_big(sql: SqlSettings) -> QueryRefusedError:
    return QueryRefusedError(
        f"the query needed more than the {sql.memory_limit} memory limit (sql.memory_limit;"
        " watch.memory_limit when a running `watch` serves it);"
        " aggregate more or select fewer rows"
    )
