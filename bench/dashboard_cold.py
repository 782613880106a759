"""`python -m bench.dashboard_cold`: where a dashboard page load's time goes, from a cold start.

What tests/test_dashboard_browser.py times (a fresh server over the sample logs, a fresh headless
Chromium, each page opened twice: first load, then again), with the CPU each load cost from /proc:
the dashboard server (`srv`), Chromium's renderer (`rend`: JavaScript, style, layout, paint) and
the rest of Chromium (`other`: its browser, GPU and network processes). `--rounds` repeats the
whole cold start. On a 2-core machine shared with other work a page's wall time tends towards
the sum of those CPU figures, so they say what a busy machine will see. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.browser import PAGES, TARGET_S, chromium
from bench.dashboard_live import cmdline, cpu_s, tree
from conflictradar.dashboard.server import start_dashboard, stop_process
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from tests.kit import free_port

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_logs" / "data"
KEYS = ("wall", "srv", "rend", "other")


def sample_db(folder: Path) -> Path:
    """The bundled sample logs through the real pipeline, as the browser test does."""
    from conflictradar.ingest.paths import expand_paths
    from conflictradar.ingest.pipeline import Ingester

    db = folder / "sample.duckdb"
    with Store.open(db) as store:
        Ingester(store, Settings(db=db)).ingest(expand_paths([str(SAMPLES)]))
    return db


def browser_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of Chromium's renderers, and of its other processes."""
    rend = other = 0.0
    for p in tree(pid):
        kind = re.search(r"--type=(\S+)", cmdline(p))
        if kind and kind.group(1) == "renderer":
            rend += cpu_s(p)
        else:
            other += cpu_s(p)
    return rend, other


def cold_start(db: Path, exe: str, again: int) -> dict[str, dict[str, list[dict[str, float]]]]:
    """One fresh server and browser: every page's first load, then `again` more loads."""
    found: dict[str, dict[str, list[dict[str, float]]]] = {}
    server, url = start_dashboard(Settings(db=db), "127.0.0.1", free_port())
    try:
        with chromium(exe) as (b, proc):
            for name, path, title, plots in PAGES:
                loads: list[dict[str, float]] = []
                for _ in range(1 + again):
                    s0, (r0, o0) = sum(cpu_s(p) for p in tree(server.pid)), browser_cpu(proc.pid)
                    wall = b.open(f"{url}/{path}?live=false", title, plots).seconds
                    s1, (r1, o1) = sum(cpu_s(p) for p in tree(server.pid)), browser_cpu(proc.pid)
                    loads.append({"wall": wall, "srv": s1 - s0, "rend": r1 - r0, "other": o1 - o0})
                found[name] = {"first": loads[:1], "again": loads[1:]}
    finally:
        stop_process(server)
    return found


def report(rounds: list[dict[str, dict[str, list[dict[str, float]]]]]) -> None:
    print(f"\n{'page':<9} {'load':<6} {'wall':>6} │ {'srv':>5} {'rend':>5} {'other':>5}"
          f" {'CPU sum':>7}   (seconds; medians over {len(rounds)} cold starts)")  # fmt: skip
    for name, *_ in PAGES:
        for kind in ("first", "again"):
            loads = [x for r in rounds for x in r[name][kind]]
            if not loads:
                continue
            med = {k: statistics.median(x[k] for x in loads) for k in KEYS}
            total = med["srv"] + med["rend"] + med["other"]
            print(f"{name:<9} {kind:<6} {med['wall']:5.2f}s │ {med['srv']:5.2f} {med['rend']:5.2f}"
                  f" {med['other']:5.2f} {total:7.2f}"
                  f"   {'' if total < TARGET_S else 'CPU alone over the target'}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_cold")
    p.add_argument("--rounds", type=int, default=2, help="cold starts (server and browser)")
    p.add_argument("--again", type=int, default=2, help="loads of each page after its first")
    p.add_argument("--db", type=Path, help="a database to show (default: the sample logs)")
    p.add_argument("--out", type=Path, default=REPO / "artifacts" / "page_cpu_cold.json")
    args = p.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("bench.dashboard_cold needs chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="conflictradar-cold-") as tmp:
        db = args.db or sample_db(Path(tmp))
        rounds = [cold_start(db, exe, args.again) for _ in range(args.rounds)]
    print("\n== dashboard page loads from a cold start (fresh server, fresh Chromium) ==")
    report(rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": rounds}, indent=1) + "\n")


if __name__ == "__main__":
    main()
