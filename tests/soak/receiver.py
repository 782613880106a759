"""The soak's webhook receiver: a real HTTP server on 127.0.0.1 that can be taken down and back up.

It records every request (Idempotency-Key, status of the notification, alerts) and answers 200.
While down nothing listens on the port: senders get "connection refused", as from a crashed host.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    at: float
    key: str
    status: str
    alerts: list[tuple[str, str]]  # (fingerprint, status)


@dataclass
class Receiver:
    port: int = 0
    got: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload: dict[str, Any] = json.loads(body)
                except ValueError:
                    payload = {}
                alerts = [(a.get("fingerprint", ""), a.get("status", ""))
                          for a in payload.get("alerts", [])]  # fmt: skip
                with receiver._lock:
                    receiver.got.append(Received(time.monotonic(),
                                                 self.headers.get("Idempotency-Key") or "",
                                                 str(payload.get("status")), alerts))  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.got)
