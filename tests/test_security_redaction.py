"""Security: no form of a secret that a receiver or httpx can echo survives redaction, and URL
userinfo never replaces a configured bearer token.

A real receiver on 127.0.0.1 answers 400 with everything it got (the path as sent, the
Authorization header, the path percent-encoded): the delivery error keeps none of it.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import quote

import httpx
import pytest

from conflictradar.alerts.channels import Channel, ChannelKind
from conflictradar.alerts.notifiers import build_request, send
from conflictradar.alerts.secrets import MASK, Secret, redact
from tests.test_alerts_delivery import fixed_notification

HOOK_PATH = "/services/T0AAA/B0BBB/XXXXsecretXXXX"
USER, PASSWORD = "hookuser", "p@ss/w0rd:x"
TOKEN = "bearer-token-0123456789"


class _Echo(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        got = {"path": self.path, "authorization": self.headers.get("Authorization", "")}
        _Echo.seen.append(got)
        body = json.dumps({**got, "encoded": quote(self.path, safe=""),
                           "lower": quote(self.path, safe="").lower()}).encode()  # fmt: skip
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _userinfo_url(port: int, path: str = HOOK_PATH) -> str:
    return f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}{path}"


def _deliver(channel: Channel) -> str:
    now = datetime.now(UTC)
    request = build_request(channel, fixed_notification(), "key-1", now, "http://127.0.0.1")
    with httpx.Client() as client:
        outcome = send(client, channel, request, 5.0, now)
    assert not outcome.delivered and outcome.error is not None
    return outcome.error


def _forms() -> list[str]:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [HOOK_PATH, quote(HOOK_PATH, safe=""), quote(HOOK_PATH, safe="").lower(), "XXXXsecretXXXX",
            PASSWORD, quote(PASSWORD, safe=""), basic, TOKEN]  # fmt: skip


@pytest.mark.parametrize("kind", [ChannelKind.WEBHOOK, ChannelKind.SLACK])
def test_echoed_path_encoded_path_and_basic_credential_are_redacted(
    echo: int, kind: ChannelKind
) -> None:
    channel = Channel("hook", kind, "HOOK_URL", Secret(_userinfo_url(echo)))
    error = _deliver(channel)
    assert "HTTP 400" in error and MASK in error
    for form in _forms():
        assert form not in error, form
    assert _Echo.seen[-1]["authorization"].startswith("Basic ")  # userinfo was sent as Basic


def test_userinfo_does_not_replace_the_bearer_token(echo: int) -> None:
    channel = Channel("am", ChannelKind.ALERTMANAGER, "AM_URL", Secret(_userinfo_url(echo, "/")),
                      secret_env="AM_TOKEN", secret=Secret(TOKEN))  # fmt: skip
    error = _deliver(channel)
    assert _Echo.seen[-1]["authorization"] == f"Bearer {TOKEN}"
    for form in _forms():
        assert form not in error, form


@pytest.mark.parametrize(
    "text",
    [
        f"error for https://hooks.example{HOOK_PATH}",
        f"error for {quote('https://hooks.example' + HOOK_PATH, safe='')}",
        f"error for {quote('https://hooks.example' + HOOK_PATH, safe='').lower()}",
        f"path {HOOK_PATH} only",
        f"Authorization: Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}",
        f"password {PASSWORD} and {quote(PASSWORD, safe='')}",
    ],
)
def test_redact_every_form(text: str) -> None:
    secret = Secret(f"https://{USER}:{quote(PASSWORD, safe='')}@hooks.example{HOOK_PATH}")
    out = redact(text, [secret])
    assert MASK in out
    for form in _forms():
        assert form not in out, form
