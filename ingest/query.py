"""The read-only SQL surface shared by `conflictradar sql` and the dashboard's SQL page.

Two fences: the statement must be exactly one SELECT (DuckDB's own parser decides), and the
connection is opened read-only with external access disabled and its configuration locked, so
neither files, the network, extensions nor settings are reachable. A timer interrupts a runaway
query; results stop at a row cap.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.errors import DatabaseError, QueryRefusedError
from ingest.settings import SqlSettings
from ingest.store import connect


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows existed than the cap allowed
    elapsed_s: float


def uncapped(sql: SqlSettings) -> SqlSettings:
    """The same limits without the row cap: exports (`sql --output`, pipes) get every row."""
    return replace(sql, max_rows=1 << 62)


def sandbox_config(sql: SqlSettings) -> dict[str, object]:
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "memory_limit": sql.memory_limit,
        "threads": 2,
        "lock_configuration": True,
    }


def check_statement(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """The single SELECT in `text`, or a QueryRefusedError saying why not."""
    if not text.strip():
        raise QueryRefusedError("the query is empty")
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"the query does not parse: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise QueryRefusedError(f"only one statement is allowed per query, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).rsplit(".", 1)[-1]
        raise QueryRefusedError(
            f"only SELECT queries are allowed here (read-only); this is a {name} statement"
        )
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_readonly(path: Path, sql: SqlSettings, wait_s: float = 5.0) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise DatabaseError(
            f"database {path} does not exist yet; run `conflictradar ingest PATH` first"
        )
    return connect(path, read_only=True, wait_s=wait_s, config=sandbox_config(sql))


def run_query(con: duckdb.DuckDBPyConnection, text: str, sql: SqlSettings) -> QueryResult:
    """Run one checked SELECT on a sandboxed connection with timeout and row cap."""
    check_statement(con, text)
    timer = threading.Timer(sql.timeout_s, con.interrupt)
    started = time.perf_counter()
    timer.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            con.execute(text)
            reader = con.to_arrow_reader(min(sql.max_rows + 1, 100_000))
            if reader is None:
                raise QueryRefusedError("the query returned no result set")
            batches = []
            rows = 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > sql.max_rows:
                    break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException as exc:
        raise QueryRefusedError(
            f"the query was cancelled after the {sql.timeout_s:g} s time limit"
        ) from exc
    except duckdb.Error as exc:
        if not timer.is_alive() and "interrupt" in str(exc).lower():
            raise QueryRefusedError(
                f"the query was cancelled after the {sql.timeout_s:g} s time limit"
            ) from exc
        raise QueryRefusedError(f"the query failed: {_first_line(exc)}") from exc
    finally:
        timer.cancel()
    truncated = table.num_rows > sql.max_rows
    if truncated:
        table = table.slice(0, sql.max_rows)
    return QueryResult(table, truncated, time.perf_counter() - started)
