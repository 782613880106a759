"""The read API every other package goes through: `open_reader(settings)` -> a `Reader`.

Readers never hold the database file: each query opens a short-lived, read-only, sandboxed
connection (retrying while a writer holds the lock) and closes it. When `conflictradar watch`
runs, it owns the file and serves the same queries over a local socket (see `ingest.serve`); the
reader then asks it instead of opening the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import polars as pl
import pyarrow as pa

from ingest.errors import DatabaseError, QueryRefusedError
from ingest.query import QueryResult, open_readonly, run_query
from ingest.settings import Settings, SqlSettings

Params = Sequence[object] | Mapping[str, object] | None


class Reader(Protocol):
    """Read-only access to the database, wherever it lives."""

    def query(self, sql: str, params: Params = None) -> pa.Table:
        """A trusted (internal) read query; refused if it is not a single SELECT."""
        ...

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        """The same as `query`, as a polars DataFrame."""
        ...

    def user_query(self, sql: str) -> QueryResult:
        """A user's SQL: sandboxed, time-limited and row-capped."""
        ...

    def exists(self) -> bool:
        """Whether there is a database to read yet."""
        ...


@dataclass
class DirectReader:
    """Opens the file read-only for each call: never blocks a writer for longer than a query."""

    path: Path
    sql: SqlSettings
    wait_s: float = 10.0

    def exists(self) -> bool:
        return self.path.exists()

    def _open(self) -> duckdb.DuckDBPyConnection:
        return open_readonly(self.path, self.sql, wait_s=self.wait_s)

    def query(self, sql: str, params: Params = None) -> pa.Table:
        con = self._open()
        try:
            from ingest.query import check_statement

            check_statement(con, sql)
            return con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"read query failed: {text}") from exc
        finally:
            con.close()

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        out = pl.from_arrow(self.query(sql, params))
        assert isinstance(out, pl.DataFrame)
        return out

    def user_query(self, sql: str) -> QueryResult:
        con = self._open()
        try:
            return run_query(con, sql, self.sql)
        finally:
            con.close()


def open_reader(settings: Settings) -> Reader:
    """The best reader for this database: the running watcher's socket, else the file itself."""
    try:
        from ingest.serve import connect_served

        served = connect_served(settings.db, settings.sql)
    except ImportError:
        served = None
    if served is not None:
        return served
    return DirectReader(settings.db, settings.sql)


__all__ = ["DirectReader", "Params", "QueryRefusedError", "Reader", "open_reader"]
