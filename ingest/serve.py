"""Reads served by the database's owner: `watch` answers read-only queries over loopback TCP.

DuckDB lets one process write a file and no other process even open it meanwhile, so while
`conflictradar watch` runs it is the only process with the file open and it answers everyone
else's reads (`sql`, the dashboard, alerts) on cursors of its own connection: no lock waits,
new rows visible at once. The address and a random token sit in `<db>.serve.json` (mode 0600);
a reader that finds no live server opens the file itself (`ingest.reader.DirectReader`).

Wire format: the client sends one JSON line {token, op, sql, params}; the server answers one
JSON line {ok, error?, truncated?, elapsed?} followed, when ok, by an Arrow IPC stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
import pyarrow as pa

from ingest.errors import DatabaseError, DatabaseLockedError, QueryRefusedError
from ingest.query import QueryResult, check_statement, run_query, uncapped
from ingest.settings import SqlSettings

if TYPE_CHECKING:
    from ingest.reader import DirectReader

log = logging.getLogger("conflictradar.serve")

INTERNAL_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 2.0


def serve_file(db: Path) -> Path:
    return db.with_name(db.name + ".serve.json")


# -- parameters over JSON ----------------------------------------------------------------------


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict) and "$dt" in value:
        return datetime.fromisoformat(str(value["$dt"]))
    if isinstance(value, dict) and "$date" in value:
        return date.fromisoformat(str(value["$date"]))
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def encode_params(params: Sequence[object] | Mapping[str, object] | None) -> object:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {k: _encode(v) for k, v in params.items()}
    return [_encode(v) for v in params]


def decode_params(raw: object) -> Any:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return {k: _decode(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_decode(v) for v in raw]
    raise QueryRefusedError("query parameters must be a list or an object")


def _write_serve_file(db: Path, info: dict[str, object]) -> None:
    path = serve_file(db)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**info, "pid": os.getpid()}, fh)
    os.replace(tmp, path)


def announce_starting(db: Path) -> None:
    """Tell readers a watcher is taking the file: they wait for it instead of opening the file
    themselves (which would hold the lock the watcher is trying to take).

    Refuses when another live process already watches this database.
    """
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        other = int(json.loads(serve_file(db).read_text())["pid"])
        if other != os.getpid() and _alive(other):
            raise DatabaseLockedError(
                f"database {db} is already watched by process {other}; stop that"
                " `conflictradar watch` first, or use another --db"
            )
    _write_serve_file(db, {"state": "starting"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def withdraw(db: Path) -> None:
    """Remove this process's serve file (on a clean stop, or when start-up failed)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(serve_file(db).read_text()).get("pid") == os.getpid():
            serve_file(db).unlink()


# -- server ------------------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline(1 << 24) or b"{}")
        except ValueError:
            self._reply({"ok": False, "error": "malformed request"})
            return
        if not isinstance(request, dict) or not secrets.compare_digest(
            str(request.get("token", "")), self.server.token
        ):
            self._reply({"ok": False, "error": "bad token"})
            return
        try:
            table, header = self.server.owner.answer(
                str(request.get("op", "")), str(request.get("sql", "")),
                decode_params(request.get("params")),
            )  # fmt: skip
        except QueryRefusedError as exc:
            self._reply({"ok": False, "kind": "refused", "error": str(exc)})
            return
        except DatabaseError as exc:
            self._reply({"ok": False, "kind": "database", "error": str(exc)})
            return
        self._reply({"ok": True, **header})
        sink = self.wfile
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)

    def _reply(self, header: dict[str, object]) -> None:
        self.wfile.write(json.dumps(header).encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: QueryServer, token: str) -> None:
        self.owner = owner
        self.token = token
        super().__init__(("127.0.0.1", 0), _Handler)


class QueryServer:
    """Runs inside the writer process; answers reads on cursors of the writer's connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, db: Path, sql: SqlSettings) -> None:
        self.con = con
        self.db = db
        self.sql = sql
        self.token = secrets.token_urlsafe(24)
        self._server = _Server(self, self.token)
        self._thread = threading.Thread(target=self._server.serve_forever, name="conflictradar-serve",
                                        daemon=True)  # fmt: skip
        self._cursor_lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        _write_serve_file(self.db, {"state": "ready", "host": "127.0.0.1", "port": self.port,
                                    "token": self.token})  # fmt: skip
        log.info("serving reads", extra={"port": self.port})

    def stop(self) -> None:
        withdraw(self.db)
        self._server.shutdown()
        self._server.server_close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:  # creating cursors is not documented as thread-safe
            return self.con.cursor()

    def answer(self, op: str, sql_text: str, params: Any) -> tuple[pa.Table, dict[str, object]]:
        cur = self._cursor()
        try:
            if op in ("user_query", "export"):
                limits = self.sql if op == "user_query" else uncapped(self.sql)
                result = run_query(cur, sql_text, limits)
                return result.table, {"truncated": result.truncated, "elapsed": result.elapsed_s}
            if op == "query":
                check_statement(cur, sql_text)
                timer = threading.Timer(INTERNAL_TIMEOUT_S, cur.interrupt)
                timer.start()
                try:
                    table = cur.sql(sql_text, params=params).to_arrow_table()
                except duckdb.Error as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else "error"
                    raise DatabaseError(f"read query failed: {first}") from exc
                finally:
                    timer.cancel()
                return table, {}
            raise QueryRefusedError(f"unknown operation {op!r}")
        finally:
            cur.close()


# -- client ------------------------------------------------------------------------------------


@dataclass
class ServedReader:
    """A Reader that asks the running watcher; falls back to opening the file if it is gone."""

    db: Path
    sql: SqlSettings
    host: str
    port: int
    token: str
    # When the watcher is gone mid-call: fall back to reading the file (True), or raise
    # WatcherGone so the caller can look again (AutoReader does).
    fallback: bool = True

    def exists(self) -> bool:
        return True

    def _ask(
        self, op: str, sql_text: str, params: object = None
    ) -> tuple[pa.Table, dict[str, Any]]:
        message = json.dumps({"token": self.token, "op": op, "sql": sql_text,
                              "params": encode_params(params)})  # type: ignore[arg-type]  # fmt: skip
        try:
            with socket.create_connection(
                (self.host, self.port), timeout=CONNECT_TIMEOUT_S
            ) as sock:
                sock.settimeout(max(self.sql.timeout_s, INTERNAL_TIMEOUT_S) + 30)
                sock.sendall(message.encode() + b"\n")
                stream = sock.makefile("rb")
                first = stream.readline()
                if not first:  # the watcher died before answering
                    raise WatcherGone
                header = json.loads(first)
                if not header.get("ok"):
                    error = str(header.get("error", "the watcher refused the query"))
                    if header.get("kind") == "refused":
                        raise QueryRefusedError(error)
                    raise DatabaseError(error)
                table = pa.ipc.open_stream(stream).read_all()
                return table, header
        except (OSError, ValueError) as exc:
            raise WatcherGone from exc

    def _direct(self) -> DirectReader:
        from ingest.reader import DirectReader

        return DirectReader(self.db, self.sql)

    def query(self, sql: str, params: Any = None) -> pa.Table:
        try:
            return self._ask("query", sql, params)[0]
        except WatcherGone:
            if not self.fallback:
                raise
            return self._direct().query(sql, params)

    def frame(self, sql: str, params: Any = None) -> pl.DataFrame:
        from ingest.reader import as_frame

        return as_frame(self.query(sql, params))

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        started = time.perf_counter()
        try:
            table, header = self._ask("user_query" if capped else "export", sql)
        except WatcherGone:
            if not self.fallback:
                raise
            return self._direct().user_query(sql, capped)
        return QueryResult(table, bool(header.get("truncated")), time.perf_counter() - started)


class WatcherGone(Exception):
    """The watcher that wrote the serve file is not answering."""


def connect_served(db: Path, sql: SqlSettings, wait_s: float = 30.0) -> ServedReader | None:
    """A reader for the watcher serving `db`, or None when no live watcher serves it.

    While a watcher is starting (it announced itself but does not serve yet), wait for it.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            info = json.loads(serve_file(db).read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _alive(pid):
            return None
        if info.get("state") == "ready":
            return ServedReader(db, sql, str(info["host"]), int(info["port"]), str(info["token"]))
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
