"""Security: the dashboard leaves loopback only when asked, says so, and never offers the SQL page
to unauthenticated visitors from the network."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conflictradar.cli import main as cli
from conflictradar.dashboard import sandbox
from conflictradar.dashboard.server import check_exposure, is_loopback, stop_process
from conflictradar.ingest.reader import DirectReader
from conflictradar.ingest.settings import SqlSettings
from conflictradar.ingest.store import Store
from tests.kit import free_port


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.2", "example.org"])
def test_a_network_host_needs_expose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    code = cli(["dashboard", "--host", host, "--db", str(tmp_path / "d.duckdb")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "--expose" in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_nothing(host: str) -> None:
    assert is_loopback(host) and check_exposure(host, expose=False) is None


def test_the_sql_page_refuses_on_an_exposed_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "d.duckdb"
    Store.open(db).close()
    monkeypatch.setenv(sandbox.EXPOSED_ENV, "1")
    outcome = sandbox.run(DirectReader(db, SqlSettings()), "SELECT 1")
    assert outcome.result is None and "switched off" in outcome.refusal
    monkeypatch.delenv(sandbox.EXPOSED_ENV)
    assert sandbox.run(DirectReader(db, SqlSettings()), "SELECT 1").result is not None


def _outside_address() -> str | None:
    """An address of this machine other than loopback, to reach the dashboard as others would."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_expose_warns_prints_a_reachable_url_and_hides_sql(tmp_path: Path) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("no non-loopback address on this machine")
    db = tmp_path / "d.duckdb"
    Store.open(db).close()
    port = free_port()
    err_path = tmp_path / "dash.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "dashboard", "--host", "0.0.0.0", "--expose",
         "--port", str(port), "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=err_path.open("w"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C" not in err_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err_path.read_text()
            time.sleep(0.3)
        err = err_path.read_text()
        assert "WARNING" in err and "SQL page is switched off" in err
        assert f"http://{socket.gethostname()}:{port}" in err and "127.0.0.1" not in err
        with urllib.request.urlopen(f"http://{outside}:{port}/_stcore/health", timeout=10) as r:
            assert r.status == 200
    finally:
        stop_process(proc)
