"""`conflictradar demo` stopped by a TERM (a timeout, a service manager) stops its watcher and
dashboard too, like Ctrl-C, instead of leaving them running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_a_terminated_demo_stops_its_watcher_and_dashboard(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "demo", "--duration", "600", "--backfill", "0.05"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CONFLICTRADAR_DB": str(tmp_path / "d.duckdb")},
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Dashboard:"):
            break
    else:
        raise AssertionError("the demo never printed its dashboard:\n" + "".join(seen))
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)],
                                               capture_output=True, text=True).stdout.split()]  # fmt: skip
    assert len(children) == 2  # watch and the dashboard
    proc.terminate()
    assert proc.wait(60) == 0
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children)
