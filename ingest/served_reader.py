"""The reader's side of ingest.serve: ask the running watcher over its loopback port.

`connect_served` finds the watcher from its serve file; `ServedReader` sends one request per
connection (ingest.wire) and raises `WatcherGone` when the watcher does not answer, so the caller
(ingest.reader.AutoReader) can look again and open the file itself once the watcher has gone.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from conflictradar.ingest.errors import DatabaseError, QueryRefusedError
from conflictradar.ingest.sandbox import INTERNAL_TIMEOUT_S, QueryResult
from conflictradar.ingest.settings import SqlSettings
from conflictradar.ingest.wire import ProtocolError, alive, encode_request, read_serve_file

CONNECT_TIMEOUT_S = 2.0


class WatcherGone(Exception):
    """The watcher that wrote the serve file is not answering (or is too busy to)."""


@dataclass(frozen=True)
class ServedReader:
    """Queries answered by the watcher that owns `db`."""

    db: Path
    sql: SqlSettings
    host: str
    port: int
    token: str
    fresh: bool = True  # wire.Header.fresh

    def _ask(
        self, op: str, sql_text: str, params: object = None, timeout_s: float | None = None
    ) -> tuple[pa.Table, dict[str, Any]]:
        try:
            message = encode_request(self.token, op, sql_text, params, self.fresh)
        except ProtocolError as exc:
            raise QueryRefusedError(str(exc)) from exc
        try:
            with socket.create_connection(
                (self.host, self.port), timeout=CONNECT_TIMEOUT_S
            ) as sock:
                wait = timeout_s if timeout_s is not None else max(self.sql.timeout_s,
                                                                  INTERNAL_TIMEOUT_S)  # fmt: skip
                sock.settimeout(wait + 30)
                sock.sendall(message)
                stream = sock.makefile("rb")
                first = stream.readline(1 << 16)
                if not first:  # the watcher died before answering
                    raise WatcherGone
                header = json.loads(first)
                if not header.get("ok"):
                    error = str(header.get("error", "the watcher refused the query"))
                    if header.get("kind") == "busy":
                        raise WatcherGone(error)
                    if header.get("kind") == "refused":
                        raise QueryRefusedError(error)
                    raise DatabaseError(error)
                table = pa.ipc.open_stream(stream).read_all()
                return table, header
        except (OSError, ValueError) as exc:
            raise WatcherGone from exc

    def query(self, sql: str, params: Any = None) -> pa.Table:
        return self._ask("query", sql, params)[0]

    def act(
        self, op: str, params: dict[str, Any], timeout_s: float
    ) -> tuple[pa.Table, dict[str, Any]]:
        """Ask the watcher to do the action `op` (ingest.wire ACTIONS), which may take up to
        `timeout_s`; its table and answer header. Raises WatcherGone when it did not answer."""
        return self._ask(op, "", params, timeout_s)

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        started = time.perf_counter()
        table, header = self._ask("user_query" if capped else "export", sql)
        return QueryResult(table, bool(header.get("truncated")), time.perf_counter() - started)


def connect_served(
    db: Path, sql: SqlSettings, wait_s: float = 30.0, fresh: bool = True
) -> ServedReader | None:
    """A reader for the watcher serving `db`, or None when no live watcher serves it.
    `fresh=False`: its reads take what is stored, without having the watcher first read the
    lines it keeps for a batch (`[watch] batch_wait`).

    While a watcher is starting (it announced itself but does not serve yet), wait for it.
    """
    deadline = time.monotonic() + wait_s
    while True:
        info = read_serve_file(db)
        if info is None or not alive(info.pid):
            return None
        if info.state == "ready":
            return ServedReader(db, sql, info.host, info.port, info.token, fresh)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
