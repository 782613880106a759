"""`python -m bench.dashboard_live`: each dashboard page's render time in a real browser while
`conflictradar demo` runs (its backfill, its live watcher following ~10 lines/s with spikes).

Starts the demo as `conflictradar demo` itself does for a user, opens every page in headless
Chromium (bench.browser: navigation start -> page ready) `--rounds` times, and prints per page
the median and worst time against the 2 s target, the dashboard's CPU per page load, and the
CPU the watcher, the dashboard and the browser used meanwhile (from /proc). Two kinds of load:
`open` (a full page load from its URL, what a link or a reload costs) and `switch` (clicking the
page in the sidebar, what moving between pages costs). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.browser import PAGES, TARGET_S, Browser, chromium
from conflictradar.dashboard.launch import TIMINGS_ENV

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
NAV_JS = """(() => {
  const a = [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
    .find(a => a.innerText.trim().endsWith(%s));
  const t = performance.now();
  a.click();
  return t;
})()"""


def cpu_s(pid: int) -> float:
    """utime + stime of a process and the children it waited for, in seconds (0 once gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TICKS


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Clocks:
    """CPU seconds of the watcher, the dashboard and the browser (with its helpers)."""

    watcher: int
    dashboard: int
    browser: int

    def read(self) -> tuple[float, float, float]:
        return (cpu_s(self.watcher), cpu_s(self.dashboard),
                sum(cpu_s(p) for p in tree(self.browser)))  # fmt: skip


def start_demo(
    backfill_h: float, duration_s: float, timings: Path
) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "conflictradar", "demo", "--duration", str(duration_s),
           "--backfill", str(backfill_h)]  # fmt: skip
    env = {**os.environ, TIMINGS_ENV: str(timings)}
    demo = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=env)  # fmt: skip
    assert demo.stdout is not None
    for line in demo.stdout:
        if m := re.match(r"Dashboard: (\S+)", line):
            return demo, m.group(1)
    raise SystemExit(f"the demo stopped before printing its URL (code {demo.wait()})")


def child(demo: int, *needles: str) -> int:
    for pid in tree(demo)[1:]:
        if any(needle in cmdline(pid) for needle in needles):
            return pid
    raise SystemExit(f"no {needles[0]!r} process under the demo")


def server_side(timings: Path, seen: int, title: str) -> tuple[int, float, float]:
    """The script and read seconds of the page's full runs logged since line `seen`."""
    lines = timings.read_text().splitlines() if timings.exists() else []
    runs = [json.loads(x) for x in lines[seen:]]
    runs = [r for r in runs if r["page"] == title]
    return len(lines), sum(r["script_s"] for r in runs), sum(r["reads_s"] for r in runs)


def measure(
    b: Browser, url: str, clocks: Clocks, rounds: int, timings: Path
) -> dict[str, dict[str, list[float]]]:
    found: dict[str, dict[str, list[float]]] = {
        name: {"open": [], "switch": [], "dashboard_cpu": [], "script": [], "reads": []}
        for name, *_ in PAGES
    }
    seen = server_side(timings, 0, "")[0]
    for _ in range(rounds):
        for name, path, title, plots in PAGES:
            before = clocks.read()[1]
            found[name]["open"].append(b.open(f"{url}/{path}", title, plots).seconds)
            found[name]["dashboard_cpu"].append(clocks.read()[1] - before)
            seen, script, reads = server_side(timings, seen, title)
            found[name]["script"].append(script)
            found[name]["reads"].append(reads)
        # Moving between pages in the app: from the click to the next page ready.
        for name, _, title, plots in (*PAGES[1:], PAGES[0]):
            clicked = b.eval(NAV_JS % json.dumps(title)) / 1000
            found[name]["switch"].append(round(b.wait_ready(title, plots).seconds - clicked, 3))
        seen = server_side(timings, 0, "")[0]
    return found


def report(found: dict[str, dict[str, list[float]]]) -> float:
    """Per page: render times, and where an `open` went (medians): the server's script, of it
    the reads, the dashboard's CPU; the rest is page load, transport and the browser."""
    print(f"\n{'page':<9} {'open p50':>8} {'max':>6} {'switch p50':>10} {'max':>6} │"
          f" {'script':>7} {'reads':>6} {'dash CPU':>8}   verdict (< {TARGET_S:g} s)")  # fmt: skip
    worst = 0.0
    for name, t in found.items():
        top = max(t["open"] + t["switch"])
        worst = max(worst, top)
        med = {k: statistics.median(v) for k, v in t.items()}
        print(f"{name:<9} {med['open']:7.2f}s {max(t['open']):5.2f}s {med['switch']:9.2f}s"
              f" {max(t['switch']):5.2f}s │ {med['script']:6.2f}s {med['reads']:5.2f}s"
              f" {med['dashboard_cpu']:7.2f}s   {'ok' if top < TARGET_S else 'SLOW'}")  # fmt: skip
    return worst


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_live")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backfill", type=float, default=2.0, help="hours, as `demo --backfill`")
    p.add_argument("--settle", type=float, default=20.0, help="seconds of live traffic first")
    p.add_argument("--out", type=Path, default=REPO / "artifacts" / "page_times_live.json")
    args = p.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("bench.dashboard_live needs chromium (apt-get install chromium)")
    print("\n== dashboard pages in a browser, `conflictradar demo` running (watcher live) ==")
    timings = Path(tempfile.mkdtemp(prefix="conflictradar-bench-")) / "timings.jsonl"
    demo, url = start_demo(args.backfill, 3600, timings)
    try:
        clocks = Clocks(
            child(demo.pid, " watch "), child(demo.pid, "dashboard.launch", "streamlit run"), 0
        )
        time.sleep(args.settle)
        with chromium(exe) as (b, browser):
            clocks.browser = browser.pid
            b.open(url, "Overview", 2)  # the first visit imports the page modules: not timed
            t0, c0 = time.monotonic(), clocks.read()
            found = measure(b, url, clocks, args.rounds, timings)
            wall, c1 = time.monotonic() - t0, clocks.read()
        print(f"demo at {url}; {args.rounds} rounds over {wall:.0f} s; CPU meanwhile (% of one"
              f" core): watcher {100 * (c1[0] - c0[0]) / wall:.0f} %, dashboard"
              f" {100 * (c1[1] - c0[1]) / wall:.0f} %, browser {100 * (c1[2] - c0[2]) / wall:.0f} %;"
              f" machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
        worst = report(found)
        print(
            f"\nTARGET every page < {TARGET_S:g} s with the demo's watcher running: worst "
            f"{worst:.2f} s -> {'met' if worst < TARGET_S else 'NOT met'}"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"url": url, "rounds": args.rounds, "pages": found},
                                       indent=1) + "\n")  # fmt: skip
    finally:
        demo.send_signal(signal.SIGINT)  # the demo stops its watcher and dashboard itself
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()


if __name__ == "__main__":
    main()
