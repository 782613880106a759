"""The read API every other package goes through: `open_reader(settings)` -> a `Reader`.

Readers never hold the database file: each query opens a short-lived, read-only, sandboxed
connection (retrying while a writer holds the lock) and closes it; `reading_batch` shares one
for a page view's few reads (well under a second) and closes it after them. When `conflictradar watch`
runs, it owns the file and answers the same queries itself (ingest.serve); the reader then asks
it (ingest.served_reader) instead of opening the file. Either way every query passes the fences
of ingest.sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    """Opens the file read-only for each call: never blocks a writer for longer than a query.

    With `keep`, the first call's connection serves the next ones until `close()`: for a short
    batch of reads (a dashboard page view: about ten queries in well under a second), which then
    pay for one open instead of ten."""

    path: Path
    sql: SqlSettings
    wait_s: float = 10.0
    keep: bool = False
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is not None:
            yield self._con
            return
        con = open_readonly(self.path, self.sql, wait_s=self.wait_s)
        if self.keep:
            self._con = con
            yield con
            return
        try:
            yield con
        finally:
            con.close()

    def close(self) -> None:
        if self._con is not None:
            con, self._con = self._con, None
            con.close()

    def query(self, sql: str, params: Params = None) -> pa.Table:
        check_statement(sql)  # before opening: a refusal never waits for the file
        with self._connection() as con:
            return read_query(con, sql, params)

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        return as_frame(self.query(sql, params))

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        check_statement(sql)
        with self._connection() as con:
            return run_query(con, sql, self.sql if capped else uncapped(self.sql))


@dataclass
class AutoReader:
    """Asks the running watcher when there is one, else opens the file; retries across the
    hand-overs (a watcher starting, stopping or killed) for up to `patience_s`."""

    path: Path
    sql: SqlSettings
    patience_s: float = 60.0
    keep: bool = False  # read the file on one connection until close() (DirectReader.keep)
    fresh: bool = True  # a watcher's reads see lines it keeps for a batch (wire.Header.fresh)
    _direct: DirectReader | None = field(default=None, repr=False)

    def exists(self) -> bool:
        return self.path.exists()

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()

    def _call(self, op: Callable[[_Queries], T]) -> T:
        deadline = time.monotonic() + self.patience_s
        while True:
            # A held connection keeps any watcher out: no need to look for one meanwhile.
            held = self._direct is not None and self._direct._con is not None
            served = None if held else connect_served(self.path, self.sql, fresh=self.fresh)
            try:
                if served is not None:
                    return op(served)
                if self._direct is None or not self.keep:
                    self._direct = DirectReader(self.path, self.sql, wait_s=2.0, keep=self.keep)
                return op(self._direct)
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


def open_reader(settings: Settings, patience_s: float = 60.0, fresh: bool = True) -> Reader:
    """The read API for everyone but the writer: the watcher's socket, else the file itself.

    `patience_s` bounds how long a call keeps retrying while the file is locked by a writer
    that serves no reads (a one-shot ingest) or a watcher is starting. `fresh=False`: a
    watcher answers from what it has stored, without first reading the lines it keeps for a
    batch (a view refreshed every few seconds; `sql` and scripts see every line).
    """
    return AutoReader(settings.db, settings.sql, patience_s, fresh=fresh)


@contextmanager
def reading_batch(
    settings: Settings, patience_s: float = 60.0, fresh: bool = True
) -> Iterator[AutoReader]:
    """A reader for a short batch of reads (a page view) that opens the file at most once:
    closed, and the file let go, when the block ends (`fresh`: as in open_reader)."""
    reader = AutoReader(settings.db, settings.sql, patience_s, keep=True, fresh=fresh)
    try:
        yield reader
    finally:
        reader.close()


__all__ = ["AutoReader", "DirectReader", "Params", "QueryRefusedError", "Reader", "open_reader"]
