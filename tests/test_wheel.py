"""The built wheel, installed alone into a fresh venv: site-packages gains nothing but the
`conflictradar` package, and `--version`, `ingest`, `alerts test` (to a loopback receiver) and
`demo` (every dashboard page in headless Chromium, assets included) run from it.

Honest shortcut: dependencies are not downloaded again. The fresh venv gets the wheel alone
(`--no-deps`), its site-packages is checked, and only then a `.pth` line lends it the project
venv's already-installed dependencies (not the project itself: that lives in an editable finder
whose `.pth` is not processed from a lent directory). Nothing from the checkout is on its path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.test_dashboard_browser import ERRORS_JS, PAGES, Browser, browser

__all__ = ["browser"]

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "conflictradar", "ingest", "alerts", "dashboard",
           "sample_logs")  # fmt: skip
FOLDERS = ("conflictradar", "ingest", "alerts", "dashboard", "sample_logs", "bench", "tests")
LOG = ROOT / "sample_logs" / "data" / "orders-gw-a.log"


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from a copy of the sources (the checkout stays clean), and the wheel
    built from that sdist (so the sdist is complete: what pipx would build from)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "data", "*.pyc"))  # fmt: skip
        else:
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    sdist = run(sys.executable, "-c", "import sys; from setuptools import build_meta as b;"
                f" print(b.build_sdist({str(out)!r}))", cwd=src)  # fmt: skip
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    (tarball,) = out.glob("conflictradar-*.tar.gz")
    proc = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, tarball,
               cwd=out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = out.glob("conflictradar-*.whl")
    return found


def test_the_wheel_holds_one_package_and_the_dashboard_assets(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {
        "conflictradar",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    for part in ("ingest", "alerts", "dashboard", "sample_logs"):
        assert f"conflictradar/{part}/__init__.py" in names
    assert (
        "conflictradar/dashboard/logo.svg" in names and "conflictradar/dashboard/icon.svg" in names
    )
    assert "conflictradar/dashboard/views/overview.py" in names
    assert not any(n.endswith((".log", ".jsonl", ".csv")) for n in names)  # no sample data


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("venv")
    target = home / "v"
    assert run(sys.executable, "-m", "venv", "--without-pip", target, cwd=home).returncode == 0
    python = target / "bin" / "python"
    proc = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
               "--no-index", "--quiet", wheel, cwd=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield target


def site_packages(venv: Path) -> Path:
    found = list((venv / "lib").glob("python3.*/site-packages"))
    assert len(found) == 1
    return found[0]


def test_pip_install_puts_nothing_but_conflictradar_in_site_packages(venv: Path) -> None:
    site = site_packages(venv)
    installed = sorted(p.name for p in site.iterdir() if p.name != "__pycache__")
    assert installed == ["conflictradar", "conflictradar-0.1.0.dist-info"], installed
    record = (site / "conflictradar-0.1.0.dist-info" / "RECORD").read_text().splitlines()
    roots = {line.split(",")[0].split("/")[0] for line in record}
    assert roots <= {"conflictradar", "conflictradar-0.1.0.dist-info", "..", "../../../bin"}, roots
    assert (venv / "bin" / "conflictradar").exists()


@pytest.fixture(scope="module")
def env(venv: Path) -> dict[str, str]:
    """Lend the dependencies once site-packages has been checked; nothing from the checkout."""
    deps = sysconfig.get_paths()["purelib"]
    (site_packages(venv) / "zz_deps.pth").write_text(deps + "\n")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CONFLICTRADAR_", "PYTHON", "VIRTUAL_ENV"))}  # fmt: skip
    return {**base, "PATH": f"{venv / 'bin'}:{base.get('PATH', '')}"}


def test_the_installed_command_runs_from_site_packages(venv: Path, env: dict[str, str],
                                                       tmp_path: Path) -> None:  # fmt: skip
    exe = venv / "bin" / "conflictradar"
    version = run(exe, "--version", cwd=tmp_path, env=env)
    assert (version.returncode, version.stdout) == (0, "conflictradar 0.1.0\n"), version.stderr
    where = run(venv / "bin" / "python", "-c",
                "import conflictradar.ingest.store as s, conflictradar.dashboard.server;"
                " import importlib.util as u; print(s.__file__);"
                " print(u.find_spec('ingest'), u.find_spec('alerts'), u.find_spec('dashboard'))",
                cwd=tmp_path, env=env)  # fmt: skip
    assert where.returncode == 0, where.stderr
    path, missing = where.stdout.splitlines()
    assert path.startswith(str(site_packages(venv)))  # not the checkout
    assert missing == "None None None"  # no generic top-level names are importable
    db = tmp_path / "cr.duckdb"
    ingest = run(exe, "ingest", LOG, "--db", db, cwd=tmp_path, env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert "1 files, " in ingest.stdout and " new 409 requests in " in ingest.stdout
    counted = run(
        exe, "sql", "SELECT count(*) AS n FROM conflicts", "--db", db, cwd=tmp_path, env=env
    )
    assert int(counted.stdout.split()[1]) > 0


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        _Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_alerts_test_reaches_a_loopback_receiver(venv: Path, env: dict[str, str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = tmp_path / "conflictradar.toml"
        cfg.write_text('[alerts.channels.hook]\ntype = "webhook"\nurl_env = "HOOK_URL"\n')
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        proc = run(venv / "bin" / "conflictradar", "alerts", "test", "--db", tmp_path / "a.duckdb",
                   cwd=tmp_path, env={**env, "HOOK_URL": url})  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "ok   hook (webhook): delivered" in proc.stdout
        assert len(_Receiver.bodies) == 1 and _Receiver.bodies[0]["version"] == "4"
    finally:
        server.shutdown()


def test_demo_from_the_wheel_passes_the_browser_check(
    venv: Path, env: dict[str, str], tmp_path: Path, browser: Browser
) -> None:
    demo = subprocess.Popen(
        [str(venv / "bin" / "conflictradar"), "demo", "--duration", "300"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = ""
        assert demo.stdout is not None
        for line in demo.stdout:
            if line.startswith("Dashboard: "):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:"), demo.stderr.read() if demo.stderr else ""
        problems: dict[str, list[str]] = {}
        for name, path, title, plots in PAGES:
            browser.open(f"{url}/{path}?live=false", title, plots)
            errors = browser.eval(ERRORS_JS) or []
            if errors:
                problems[name] = errors
        assert not problems, problems
    finally:
        demo.send_signal(signal.SIGINT)  # the demo stops its watcher and dashboard
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0


def test_nothing_imports_the_uninstalled_top_level_names() -> None:
    """From a checkout, `import ingest` would still work (the root is on sys.path) and hide a
    module the wheel cannot import: the code must say `conflictradar.ingest`."""
    old = re.compile(r"^\s*(?:from|import) (?:ingest|alerts|dashboard|sample_logs)\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if old.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
