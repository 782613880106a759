"""Launches the dashboard: `streamlit run dashboard/app.py` as a child process, bound to loopback.

conflictradar.commands -> run_dashboard (foreground, until Ctrl-C) or start_dashboard (the demo: the
process and its URL). The app gets the database and config paths through CONFLICTRADAR_DB and
CONFLICTRADAR_CONFIG, the same variables every command reads, so it resolves the same settings.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any

from conflictradar.dashboard.sandbox import EXPOSED_ENV
from conflictradar.ingest.errors import ConflictRadarError
from conflictradar.ingest.settings import Settings

APP = Path(__file__).resolve().parent / "app.py"
ROOT = APP.parent.parent
READY_TIMEOUT_S = 60.0


class DashboardError(ConflictRadarError):
    """The dashboard could not be started."""


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the dashboard on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: whatever it resolves to, treat it as reachable
        return False


def url_for(settings: Settings, host: str, port: int) -> str:
    """The address to print: the configured public URL, else the bound host and port (for a
    wildcard bind, this machine's name: 127.0.0.1 would not work from anywhere else)."""
    if settings.dashboard.public_url:
        return settings.dashboard.public_url
    shown = socket.gethostname() if host in ("", "0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


def check_exposure(host: str, expose: bool) -> str | None:
    """None for a loopback bind; the warning to print for an exposed one; an error without
    `--expose`."""
    if is_loopback(host):
        return None
    if not expose:
        raise DashboardError(
            f"--host {host} would serve the dashboard, unauthenticated, to the network; add"
            " --expose to mean it (the SQL page is then switched off), or keep it on 127.0.0.1"
            " behind an authenticating reverse proxy (README: Security)"
        )
    return (
        f"conflictradar dashboard: WARNING: listening on {host}: every page but SQL is open to"
        " anyone who can reach this port, without authentication; the SQL page is switched off"
    )


def command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "conflictradar.dashboard.launch",  # `streamlit run`, with the pages' imports warmed
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.runOnSave",
        "false",
        "--server.fileWatcherType",
        "none",
        # The pages write nothing by "magic": skip rewriting each page's code on its first run.
        "--runner.magicEnabled",
        "false",
        # No forced full garbage collection after every run of a page (Python's own still runs):
        # it held the interpreter ~40 ms (alone; more on a busy machine) after each page view,
        # while the same process was sending a fresh browser the Plotly chunk it had asked for.
        "--runner.postScriptGC",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--theme.primaryColor",
        "#d9480f",
    ]


def environment(settings: Settings, exposed: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(EXPOSED_ENV, None)
    if exposed:
        env[EXPOSED_ENV] = "1"
    env["CONFLICTRADAR_DB"] = str(settings.db.resolve())
    if settings.config_path is not None:
        env["CONFLICTRADAR_CONFIG"] = str(settings.config_path.resolve())
    else:
        env.pop("CONFLICTRADAR_CONFIG", None)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DashboardError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port"
            ) from exc


def _wait_ready(proc: subprocess.Popen[bytes], host: str, port: int, timeout_s: float) -> None:
    probe = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    probe = f"[{probe}]" if ":" in probe else probe
    health = f"http://{probe}:{port}/_stcore/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DashboardError(
                f"the dashboard exited during start-up (code {proc.returncode}); run "
                f"`{' '.join(command(host, port)[1:5])}` to see why"
            )
        try:
            with urllib.request.urlopen(health, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    proc.terminate()
    raise DashboardError(f"the dashboard did not answer on {health} within {timeout_s:g} s")


def start_dashboard(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    open_browser: bool = False,
    wait: bool = True,
    quiet: bool = True,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the dashboard in the background; returns the process and the URL to open.

    With `wait`, returns once the server answers its health check. `quiet` sends Streamlit's own
    start-up banner to /dev/null (errors still reach stderr).
    """
    host = settings.dashboard.host if host is None else host
    port = settings.dashboard.port if port is None else port
    _check_port(host, port)
    proc = subprocess.Popen(
        command(host, port),
        env=environment(settings, exposed=not is_loopback(host)),
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL if quiet else None,
        stdin=subprocess.DEVNULL,
    )
    url = url_for(settings, host, port)
    if wait:
        try:
            _wait_ready(proc, host, port, READY_TIMEOUT_S)
        except BaseException:
            if proc.poll() is None:
                proc.terminate()
            raise
        if open_browser:
            webbrowser.open(url)
    return proc, url


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """Stop a child (the dashboard, a watcher): SIGTERM, then SIGKILL after `timeout_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_dashboard(settings: Settings, host: str, port: int, open_browser: bool = False,
                  expose: bool = False) -> int:  # fmt: skip
    """`conflictradar dashboard`: serve until Ctrl-C or the server stops; returns the exit code."""
    warning = check_exposure(host, expose)
    proc, url = start_dashboard(settings, host, port, open_browser=open_browser)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A supervisor's SIGTERM must not leave the Streamlit child behind; caught from before the
    # ready line, so a SIGTERM sent as soon as it is printed stops cleanly too.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        if warning:
            print(warning, file=sys.stderr)
        print(
            f"conflictradar dashboard: {url}  (database {settings.db.resolve()}; Ctrl-C stops)",
            file=sys.stderr,
        )
        code = proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process(proc)
        signal.signal(signal.SIGTERM, previous)
    return 0 if code in (0, -2, -15) else 1
