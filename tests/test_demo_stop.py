"""`conflictradar demo` stopped by a TERM (a timeout, a service manager) stops its watcher and
dashboard too, like Ctrl-C, instead of leaving them running."""

from __future__ import annotations

import os
import signal
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


def _started_demo(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
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
    return proc, children


def _all_gone(children: list[int]) -> bool:
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(c) for c in children)


def test_a_terminated_demo_stops_its_watcher_and_dashboard(tmp_path: Path) -> None:
    proc, children = _started_demo(tmp_path)
    proc.terminate()
    assert proc.wait(60) == 0
    assert _all_gone(children)


def test_a_second_signal_while_stopping_does_not_leave_children_running(tmp_path: Path) -> None:
    """An impatient second Ctrl-C, or a TERM after the Ctrl-C (a timeout, a service manager),
    arriving while the demo stops its children."""
    proc, children = _started_demo(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # the demo is stopping its dashboard now
    proc.terminate()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0
    assert _all_gone(children)
