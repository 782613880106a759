"""Reads served by the database's owner: `watch` answers read queries over loopback TCP.

DuckDB lets one process write a file and no other process even open it meanwhile, so while
`conflictradar watch` runs it is the only process with the file open and it answers everyone
else's reads (`sql`, the dashboard, alerts) on cursors of its own connection: no lock waits,
new rows visible at once. Every query goes through ingest.sandbox (statement tree, read-only
transaction always rolled back, time limit); the watcher's DuckDB memory limit caps its size.

The port is reachable by every local user, so the front is defensive: one selector thread reads
request headers from all connections without a thread each, drops a connection that has not
sent its header within `HEADER_TIMEOUT_S`, keeps at most `MAX_PENDING` of them (a new one pushes
out the oldest), and checks the token before reading a byte of the body. Only authenticated
requests reach the fixed pool of `WORKERS` threads; user SQL runs one query at a time.

Besides reads, the watcher does a few fixed actions for an authenticated caller when it offers
them (`offer`; ingest.wire ACTIONS: an alerts test or check through its own alert engine). An
action takes named parameters, never SQL: no other process can make the watcher write anything
else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from conflictradar.ingest.errors import (
    ConflictRadarError,
    DatabaseError,
    DatabaseLockedError,
    QueryRefusedError,
)
from conflictradar.ingest.sandbox import read_query, run_query, uncapped
from conflictradar.ingest.settings import SqlSettings
from conflictradar.ingest.wire import (
    ACTIONS,
    HEADER_MAX,
    Header,
    ProtocolError,
    alive,
    parse_body,
    parse_header,
    read_serve_file,
    reply_line,
    serve_file,
    write_serve_file,
)

log = logging.getLogger("conflictradar.serve")

HEADER_TIMEOUT_S = 5.0  # to send the header line after connecting
BODY_TIMEOUT_S = 10.0  # to send the body once authenticated
WRITE_TIMEOUT_S = 60.0  # for the reader to take the answer
MAX_PENDING = 128  # connections still sending their header
WORKERS = 4  # threads answering authenticated requests
MAX_QUEUED = 32  # authenticated requests waiting for a worker; more are told to retry

# An action's answer: the table to stream back and extra header fields.
Action = Callable[[Mapping[str, Any]], tuple[pa.Table, dict[str, object]]]


def announce_starting(db: Path) -> None:
    """Tell readers a watcher is taking the file: they wait for it instead of opening the file
    themselves (which would hold the lock the watcher is trying to take).

    Refuses when another live process already watches this database.
    """
    info = read_serve_file(db)
    if info is not None and info.pid != os.getpid() and alive(info.pid):
        raise DatabaseLockedError(
            f"database {db} is already watched by process {info.pid}; stop that"
            " `conflictradar watch` first, or use another --db"
        )
    write_serve_file(db, {"state": "starting"})


def withdraw(db: Path) -> None:
    """Remove this process's serve file (on a clean stop, or when start-up failed)."""
    info = read_serve_file(db)
    if info is not None and info.pid == os.getpid():
        with contextlib.suppress(OSError):
            serve_file(db).unlink()


@dataclass
class _Pending:
    sock: socket.socket
    since: float
    data: bytearray = field(default_factory=bytearray)


def _send_quietly(sock: socket.socket, header: dict[str, object]) -> None:
    """Answer a refused request and close; a client that does not read loses the answer."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(reply_line(header))
    with contextlib.suppress(OSError):
        sock.close()


class QueryServer:
    """Runs inside the writer process; answers reads on cursors of the writer's connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, db: Path, sql: SqlSettings) -> None:
        self.con = con
        self.db = db
        self.sql = sql
        self.token = secrets.token_urlsafe(24)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.setblocking(False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._front, name="conflictradar-serve",
                                        daemon=True)  # fmt: skip
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="conflictradar-read")
        self._queued = threading.BoundedSemaphore(WORKERS + MAX_QUEUED)
        self._user_sql = threading.Semaphore(1)
        self._cursor_lock = threading.Lock()
        self._actions: dict[str, Action] = {}
        self._acting = threading.Lock()  # one action at a time
        # Run before every fresh request (wire.Header.fresh): the watcher's Tailer.catch_up
        # (lines it left waiting for a batch are read first, so the reader sees them).
        self.before_read: Callable[[], None] | None = None

    def offer(self, op: str, action: Action) -> None:
        """Answer the action `op` (one of wire.ACTIONS) by calling `action(params)` in this
        process: a fixed thing the watcher does itself for an authenticated caller (an alerts
        test or check through its own outbox), never SQL, so the SQL surface stays read-only."""
        if op not in ACTIONS:
            raise ValueError(f"{op!r} is not an action")
        self._actions[op] = action

    def _act(self, op: str, sql_text: str, params: Any) -> tuple[pa.Table, dict[str, object]]:
        if sql_text or not isinstance(params, dict | None):
            raise QueryRefusedError(f"{op} takes no SQL, only named parameters")
        action = self._actions.get(op)
        if action is None:
            raise QueryRefusedError(
                f"the watcher of {self.db} does not evaluate alerts (it runs with --no-alerts);"
                " restart it without --no-alerts, or stop it, to test or check alerts"
            )
        if not self._acting.acquire(timeout=30.0):
            raise QueryRefusedError("the watcher is busy with another alerts test or check")
        try:
            return action(params or {})
        finally:
            self._acting.release()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        self._thread.start()
        write_serve_file(self.db, {"state": "ready", "host": "127.0.0.1", "port": self.port,
                                   "token": self.token})  # fmt: skip
        log.info("serving reads", extra={"port": self.port})

    def stop(self) -> None:
        withdraw(self.db)
        self._stopping.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):
            self._listener.close()

    # -- the front: accept, read headers, authenticate ----------------------------------------

    def _front(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        pending: dict[socket.socket, _Pending] = {}

        def drop(sock: socket.socket) -> None:
            pending.pop(sock, None)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(sock)
            with contextlib.suppress(OSError):
                sock.close()

        while not self._stopping.is_set():
            for key, _ in selector.select(timeout=0.25):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept(selector, pending, drop)
                    continue
                try:
                    chunk = sock.recv(HEADER_MAX + 1 - len(pending[sock].data))
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    drop(sock)
                    continue
                if not chunk:
                    drop(sock)
                    continue
                entry = pending[sock]
                entry.data += chunk
                if b"\n" in entry.data or len(entry.data) > HEADER_MAX:
                    pending.pop(sock)
                    selector.unregister(sock)
                    self._admit(sock, bytes(entry.data))
            now = time.monotonic()
            for sock in [s for s, p in pending.items() if now - p.since > HEADER_TIMEOUT_S]:
                drop(sock)
        for sock in list(pending):
            drop(sock)
        selector.close()

    def _accept(self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending],
                drop: Any) -> None:  # fmt: skip
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: shed the oldest and go on
                log.warning("accept failed", extra={"error": str(exc)})
                if pending:
                    drop(min(pending.values(), key=lambda p: p.since).sock)
                return
            if len(pending) >= MAX_PENDING:
                drop(min(pending.values(), key=lambda p: p.since).sock)
            sock.setblocking(False)
            pending[sock] = _Pending(sock, time.monotonic())
            selector.register(sock, selectors.EVENT_READ)

    def _admit(self, sock: socket.socket, data: bytes) -> None:
        line, newline, rest = data.partition(b"\n")
        try:
            header = parse_header(line + newline)
        except ProtocolError as exc:
            _send_quietly(sock, {"ok": False, "kind": "protocol", "error": str(exc)})
            return
        if not secrets.compare_digest(header.token, self.token.encode()):
            _send_quietly(sock, {"ok": False, "kind": "auth", "error": "bad token"})
            return
        if not self._queued.acquire(blocking=False):
            _send_quietly(sock, {"ok": False, "kind": "busy", "error": "the watcher is busy"})
            return
        try:
            self._pool.submit(self._serve, sock, header, rest)
        except RuntimeError:  # shutting down
            self._queued.release()
            _send_quietly(sock, {"ok": False, "kind": "busy", "error": "the watcher is stopping"})

    # -- the workers: read the body, answer ------------------------------------------------------

    def _serve(self, sock: socket.socket, header: Header, rest: bytes) -> None:
        try:
            sock.setblocking(True)
            sock.settimeout(BODY_TIMEOUT_S)
            body = bytearray(rest[: header.size])
            while len(body) < header.size:
                chunk = sock.recv(min(1 << 16, header.size - len(body)))
                if not chunk:
                    return
                body += chunk
            sock.settimeout(WRITE_TIMEOUT_S)
            self._answer(sock, header.op, bytes(body), header.fresh)
        except OSError:  # the client went away or stalled: nothing to answer
            pass
        except Exception as exc:  # never a traceback on the socket or in the log
            log.error("read request failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            with contextlib.suppress(OSError):
                sock.sendall(reply_line({"ok": False, "kind": "database",
                                         "error": "the watcher could not answer"}))  # fmt: skip
        finally:
            self._queued.release()
            with contextlib.suppress(OSError):
                sock.close()

    def _answer(self, sock: socket.socket, op: str, body: bytes, fresh: bool = True) -> None:
        try:
            sql_text, params = parse_body(body)
            table, extra = self.answer(op, sql_text, params, fresh)
        except ProtocolError as exc:
            sock.sendall(reply_line({"ok": False, "kind": "protocol", "error": str(exc)}))
            return
        except QueryRefusedError as exc:
            sock.sendall(reply_line({"ok": False, "kind": "refused", "error": str(exc)}))
            return
        except ConflictRadarError as exc:
            sock.sendall(reply_line({"ok": False, "kind": "database", "error": str(exc)}))
            return
        sock.sendall(reply_line({"ok": True, **extra}))
        with sock.makefile("wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:  # creating cursors is not documented as thread-safe
            return self.con.cursor()

    def answer(
        self, op: str, sql_text: str, params: Any, fresh: bool = True
    ) -> tuple[pa.Table, dict[str, object]]:
        """Run one request on a fresh cursor of the writer's connection; `fresh`: after
        `before_read` (the lines the watcher keeps for a batch are read first)."""
        if fresh and self.before_read is not None:
            self.before_read()
        if op in ("user_query", "export"):
            limits = self.sql if op == "user_query" else uncapped(self.sql)
            if not self._user_sql.acquire(timeout=self.sql.timeout_s):
                raise QueryRefusedError(
                    "the watcher is running another SQL query; try again in a moment"
                )
            try:
                cur = self._cursor()
                try:
                    result = run_query(cur, sql_text, limits)
                finally:
                    cur.close()
            finally:
                self._user_sql.release()
            return result.table, {"truncated": result.truncated, "elapsed": result.elapsed_s}
        if op == "query":
            cur = self._cursor()
            try:
                return read_query(cur, sql_text, params), {}
            finally:
                cur.close()
        if op in ACTIONS:
            return self._act(op, sql_text, params)
        raise DatabaseError(f"unknown operation {op[:40]!r}")
