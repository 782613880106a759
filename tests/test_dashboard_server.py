"""The dashboard launcher: the exact streamlit command, what the app is told, loopback by default,
and one clear sentence when the port is taken."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conflictradar.dashboard.server import (
    APP,
    DashboardError,
    command,
    environment,
    start_dashboard,
    url_for,
)
from conflictradar.ingest.settings import DashboardSettings, Settings
from tests.kit import free_port


def test_command_runs_the_app_headless_on_the_given_address() -> None:
    cmd = command("127.0.0.1", 8765)
    assert cmd[1:5] == ["-m", "conflictradar.dashboard.launch", "run", str(APP)]
    pairs = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8765"
    assert pairs["--server.headless"] == "true"
    assert pairs["--browser.gatherUsageStats"] == "false"


def test_the_app_gets_the_database_and_config_paths(tmp_path: Path) -> None:
    config = tmp_path / "conflictradar.toml"
    env = environment(Settings(db=Path("rel.duckdb"), config_path=config))
    assert env["CONFLICTRADAR_DB"] == str(Path("rel.duckdb").resolve())
    assert env["CONFLICTRADAR_CONFIG"] == str(config.resolve())
    # Installed, the app imports conflictradar.dashboard: no checkout root on the path.
    assert str(APP.parent.parent) not in env.get("PYTHONPATH", "").split(":")
    assert "CONFLICTRADAR_CONFIG" not in environment(Settings(db=tmp_path / "x.duckdb"))


def test_defaults_bind_loopback_and_urls_are_printable() -> None:
    s = Settings()
    assert s.dashboard.host == "127.0.0.1" and s.dashboard.port == 8501
    assert url_for(s, "127.0.0.1", 8501) == "http://127.0.0.1:8501"
    # A wildcard bind is reached by this machine's name (127.0.0.1 works nowhere else).
    assert url_for(s, "0.0.0.0", 9000) == f"http://{socket.gethostname()}:9000"
    assert url_for(s, "::1", 9000) == "http://[::1]:9000"
    public = Settings(dashboard=DashboardSettings(public_url="https://radar.example.com"))
    assert url_for(public, "0.0.0.0", 9000) == "https://radar.example.com"


def test_a_taken_port_is_one_clear_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DashboardError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            start_dashboard(Settings(db=tmp_path / "x.duckdb"), "127.0.0.1", port)


def test_sigterm_stops_the_dashboard_and_its_streamlit_child(tmp_path: Path) -> None:
    """What `conflictradar dashboard` does under a supervisor: serve, then stop cleanly."""
    port = free_port()
    code = (
        "import sys; from pathlib import Path; from dashboard.server import run_dashboard;"
        " from ingest.settings import Settings;"
        f" sys.exit(run_dashboard(Settings(db=Path({str(tmp_path / 'x.duckdb')!r})),"
        f" '127.0.0.1', {port}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=APP.parent.parent,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while "conflictradar dashboard:" not in line and line:
            line = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        with socket.socket() as s:  # the child let go of the port too
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_server_sends_without_waiting_for_acks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit's listener leaves Nagle on for its connections (each keep-alive response after
    the first then waits ~40 ms for the browser's delayed ACK): the launcher turns it off."""
    from streamlit.web.server.starlette import starlette_server

    from conflictradar.dashboard.launch import no_delay

    monkeypatch.setattr(starlette_server, "_bind_socket", starlette_server._bind_socket)
    no_delay()
    no_delay()  # wrapped once, however often it is called
    listener = starlette_server._bind_socket("127.0.0.1", 0, 8)
    with listener, socket.create_connection(listener.getsockname()[:2], timeout=5):
        listener.setblocking(True)
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
