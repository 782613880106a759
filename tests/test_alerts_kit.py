"""Shared kit for the alerts tests (no tests here): a real HTTP receiver and database factories.

The receiver is a `ThreadingHTTPServer` on 127.0.0.1, port 0, in a thread, answering from a
script of replies and recording every request exactly as received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conflictradar.ingest.alert_settings import parse_alert_settings
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"ok"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POSTs from `replies` in order (then `default`); records what it got."""

    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    on_request: Callable[[Received], object] | None = None
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(
                    self.path, dict(self.headers.items()), self.rfile.read(length), time.monotonic()
                )
                with receiver._lock:
                    receiver.requests.append(got)
                    reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                if receiver.on_request is not None:
                    receiver.on_request(got)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T000/B000/XXXXsecretXXXX"

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def utc_minute(offset_min: float = 0.0) -> datetime:
    """Now, floored to the minute, plus an offset: tests use real time so backoff is real."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now + timedelta(minutes=offset_min)


def request_row(
    ts: datetime,
    endpoint: str,
    path: str,
    status: int,
    *,
    method: str = "PUT",
    message: str | None = "version mismatch",
    line: int = 0,
    file: str = "/logs/gw.log",
) -> dict[str, Any]:
    return {
        "ts": ts,
        "file": file,
        "line": line,
        "format": "json",
        "host": "api",
        "client_ip": "10.0.0.1",
        "user_agent": "sdk/1",
        "method": method,
        "path": path,
        "query": None,
        "endpoint": endpoint,
        "status": status,
        "upstream_status": None,
        "bytes": 10,
        "duration_ms": 1.0,
        "request_id": None,
        "message": message,
    }


@dataclass
class Db:
    """A real conflictradar database in tmp_path, filled with requests and classified."""

    path: Path
    settings: Settings
    store: Store
    lines: int = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.lines += 1
            row["line"] = row["line"] or self.lines
        cols = ", ".join(REQUEST_COLUMNS)
        marks = ", ".join("?" for _ in REQUEST_COLUMNS)
        with self.store.transaction() as con:
            con.executemany(
                f"INSERT INTO requests ({cols}) VALUES ({marks})",
                [[r[c] for c in REQUEST_COLUMNS] for r in rows],
            )
            con.execute("DELETE FROM request_minutes")
            con.execute(
                "INSERT INTO request_minutes SELECT date_trunc('minute', ts), file, host, endpoint,"
                " method, status, count(*), sum(bytes), sum(duration_ms) FROM requests GROUP BY ALL"
            )
            Classifier(self.settings.classify).classify_all(con)

    def conflicts(
        self,
        at: datetime,
        n: int,
        endpoint: str = "/orders/{id}",
        *,
        spread_s: float = 60.0,
        paths: int = 3,
        message: str = "version mismatch",
    ) -> None:
        """`n` 409s spread over `spread_s` seconds ending at `at`."""
        rows = []
        for i in range(n):
            ts = at - timedelta(seconds=spread_s * (n - i) / max(n, 1))
            path = endpoint.replace("{id}", str(1000 + i % paths))
            rows.append(request_row(ts, endpoint, path, 409, message=message))
        self.add(rows)

    def quiet_since(self, start: datetime) -> None:
        """One ordinary request, so history from `start` on counts as known (and quiet)."""
        self.add([request_row(start, "/health", "/health", 200, method="GET", message=None)])


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    path = tmp_path / "cr.duckdb"
    settings = Settings(db=path)
    store = Store.open(path)
    yield Db(path, settings, store)
    store.close()


def settings_with(base: Settings, alerts: dict[str, Any]) -> Settings:
    return replace(base, alerts=parse_alert_settings(alerts))


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()
