"""The read API every other package goes through: `open_reader(settings)` -> a `Reader`.

Readers never hold the database file: each query opens a short-lived, read-only, sandboxed
connection (retrying while a writer holds the lock) and closes it. When `conflictradar watch`
runs, it owns the file and answers the same queries itself (ingest.serve); the reader then asks
it (ingest.served_reader) instead of opening the file. Either way every query passes the fences
of ingest.sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb
import polars as pl
import pyarrow as pa

from conflictradar.ingest.errors import DatabaseLockedError, QueryRefusedError
from conflictradar.ingest.sandbox import (
    Params,
    QueryResult,
    check_statement,
    open_readonly,
    read_query,
    run_query,
    uncapped,
)
from conflictradar.ingest.served_reader import WatcherGone, connect_served
from conflictradar.ingest.settings import Settings, SqlSettings

T = TypeVar("T")


class Reader(Protocol):
    """Read-only access to the database, wherever it lives."""

    def query(self, sql: str, params: Params = None) -> pa.Table:
        """A trusted (internal) read query; refused if it is not a single reading SELECT."""
        ...

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        """The same as `query`, as a polars DataFrame."""
        ...

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        """A user's SQL: sandboxed, time-limited and (unless exported: `capped=False`) row-capped."""
        ...

    def exists(self) -> bool:
        """Whether there is a database to read yet."""
        ...


class _Queries(Protocol):
    def query(self, sql: str, params: Params = None) -> pa.Table: ...

    def user_query(self, sql: str, capped: bool = True) -> QueryResult: ...


def as_frame(table: pa.Table) -> pl.DataFrame:
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


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
        check_statement(sql)  # before opening: a refusal never waits for the file
        con = self._open()
        try:
            return read_query(con, sql, params)
        finally:
            con.close()

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        return as_frame(self.query(sql, params))

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        check_statement(sql)
        con = self._open()
        try:
            return run_query(con, sql, self.sql if capped else uncapped(self.sql))
        finally:
            con.close()


@dataclass
class AutoReader:
    """Asks the running watcher when there is one, else opens the file; retries across the
    hand-overs (a watcher starting, stopping or killed) for up to `patience_s`."""

    path: Path
    sql: SqlSettings
    patience_s: float = 60.0

    def exists(self) -> bool:
        return self.path.exists()

    def _call(self, op: Callable[[_Queries], T]) -> T:
        deadline = time.monotonic() + self.patience_s
        while True:
            served = connect_served(self.path, self.sql)
            try:
                if served is not None:
                    return op(served)
                return op(DirectReader(self.path, self.sql, wait_s=2.0))
            except (WatcherGone, DatabaseLockedError):
                if time.monotonic() >= deadline:
                    raise DatabaseLockedError(
                        f"database {self.path} stayed busy for {self.patience_s:g} s; is a"
                        " `conflictradar watch` starting or stuck?"
                    ) from None
                time.sleep(0.1)

    def query(self, sql: str, params: Params = None) -> pa.Table:
        return self._call(lambda r: r.query(sql, params))

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        return as_frame(self.query(sql, params))

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        return self._call(lambda r: r.user_query(sql, capped))


def open_reader(settings: Settings, patience_s: float = 60.0) -> Reader:
    """The read API for everyone but the writer: the watcher's socket, else the file itself.

    `patience_s` bounds how long a call keeps retrying while the file is locked by a writer
    that serves no reads (a one-shot ingest) or a watcher is starting.
    """
    return AutoReader(settings.db, settings.sql, patience_s)


__all__ = ["AutoReader", "DirectReader", "Params", "QueryRefusedError", "Reader", "open_reader"]
