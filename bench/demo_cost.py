"""`make bench` (demo cost): what `make demo`'s watcher costs once its backfill is done.

`conflictradar demo` runs as `make demo` runs it: two hours of sample traffic written first,
then ~10 lines/s over eight logs with a 409 spike every 150 s, its watcher and its dashboard.
Once the demo says live traffic flows (the backfill is ingested and explained), this reads the
watcher's CPU (utime + stime of all its threads, from /proc) over a window, as % of one core,
and its RSS. No browser is open: `bench.dashboard_live` prices the pages with the demo running.
Issue 13's target: under 10% of a core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.watch_cost import cpu_seconds, rss_mb

READY = "live traffic now flows"
TARGET_PCT = 10.0


def _watcher_of(demo: int) -> int:
    """The PID of the demo's `conflictradar watch` child."""
    children = Path(f"/proc/{demo}/task/{demo}/children").read_text().split()
    for child in children:
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"watch" in argv:
            return int(child)
    raise SystemExit(f"bench.demo_cost: no watch process under the demo ({demo})")


def demo_cost(seconds: float, settle_s: float = 10.0) -> None:
    print("\n== demo cost: `make demo`'s watcher once its backfill is done (CPU of all its"
          " threads from /proc, % of one core; no browser) ==", flush=True)  # fmt: skip
    tmp = tempfile.mkdtemp(prefix="conflictradar-bench-demo-")
    env = os.environ | {"TMPDIR": tmp}  # the demo's own folder lands here, removed at the end
    demo = subprocess.Popen(
        [sys.executable, "-u", "-m", "conflictradar", "demo",
         "--duration", str(int(settle_s + seconds + 60))],
        cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = time.monotonic()
        assert demo.stderr is not None
        for line in demo.stderr:
            if READY in line:
                break
        else:
            raise SystemExit(
                f"bench.demo_cost: the demo ended (exit {demo.wait()}) before live traffic"
            )
        backfill_s = time.monotonic() - started
        # Keep reading what the demo and its watcher write, so neither blocks on a full pipe.
        threading.Thread(target=demo.stderr.read, daemon=True).start()
        watcher = _watcher_of(demo.pid)
        time.sleep(settle_s)
        cpu0, t0 = cpu_seconds(watcher), time.monotonic()
        time.sleep(seconds)
        cpu = 100 * (cpu_seconds(watcher) - cpu0) / (time.monotonic() - t0)
        verdict = "met" if cpu < TARGET_PCT else "NOT met"
        print(f"backfill ingested and explained in {backfill_s:.0f} s (demo start included);"
              f" then over {seconds:g} s: watcher {cpu:.1f}% of a core, RSS {rss_mb(watcher):.0f} MB"
              f"   target < {TARGET_PCT:g}%: {verdict}", flush=True)  # fmt: skip
    finally:
        demo.send_signal(signal.SIGTERM)  # the demo stops its watcher and dashboard on TERM
        try:
            demo.wait(90)
        except subprocess.TimeoutExpired:
            demo.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    p = argparse.ArgumentParser(prog="python -m bench.demo_cost")
    p.add_argument("--seconds", type=float, default=60.0, help="CPU measurement window")
    demo_cost(p.parse_args().seconds)


if __name__ == "__main__":
    main()
