"""`python -m bench.alert_cost`: what one evaluation of the alert rules costs a watcher, in-process.

N access logs of realistic traffic (`bench.gen_realistic`) hold `--history` minutes at 100
lines/s in all; a Tailer reads them into a fresh database, as a watcher starting on them would.
Then the default rules are evaluated `--evaluations` times at the current time, as the live
engine does every 10 s (`AlertEngine.evaluate`: both windows of each rule and their 30 history
windows per scope value, judging, state and events): the process CPU (user + sys, DuckDB's
threads included) and wall time of each, medians printed. The default rules' baselines look
back 160 minutes, so a history shorter than that prices a watcher that has just started.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.gen_realistic import Traffic, past_stamps
from bench.look_cost import in_process_watcher, process_cpu
from conflictradar.alerts.engine import AlertEngine

RATE = 100  # lines/s over all the logs


def alert_cost(files: int, history_min: float, evaluations: int,
               seed: int = 7) -> tuple[list[float], list[float], int]:  # fmt: skip
    """(CPU seconds, wall seconds) of each evaluation, and the rollup rows they read from."""
    traffic = Traffic(seed)
    lines = max(files, round(history_min * 60 * RATE))
    with tempfile.TemporaryDirectory(prefix="conflictradar-bench-alerts-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        rows = traffic.lines(lines, past_stamps(lines, RATE)).splitlines(True)
        for k in range(files):
            (logs / f"site{k}.access.log").write_bytes(b"".join(rows[k::files]))
        with in_process_watcher(logs, Path(tmp) / "alerts.duckdb") as (settings, store, _):
            row = store.con.execute("SELECT count(*) FROM request_minutes").fetchone()
            rollups = int(row[0]) if row else 0
            engine = AlertEngine(settings, store)
            cpu, wall = [], []
            try:
                for _ in range(evaluations):
                    c, t = process_cpu(), time.perf_counter()
                    engine.evaluate(datetime.now(UTC))
                    cpu.append(process_cpu() - c)
                    wall.append(time.perf_counter() - t)
            finally:
                engine.close()
    return cpu, wall, rollups


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.alert_cost")
    p.add_argument("--files", type=int, default=48, help="access logs (default 48)")
    p.add_argument("--history", default="3,180", metavar="MINUTES",
                   help="minutes of history at 100 lines/s, comma-separated (default 3,180)")  # fmt: skip
    p.add_argument("--evaluations", type=int, default=8, help="evaluations timed (default 8)")
    args = p.parse_args()
    print(f"\n== one evaluation of the default alert rules over {args.files} access logs, 100"
          f" lines/s in all (in-process; medians of {args.evaluations}; the live engine evaluates"
          " every 10 s) ==")  # fmt: skip
    for minutes in (float(m) for m in args.history.split(",") if m.strip()):
        cpu, wall, rollups = alert_cost(max(1, args.files), minutes, max(1, args.evaluations))
        spent = statistics.median(cpu)
        print(f"{minutes:6g} min of history ({rollups:,} rollup rows): {1000 * spent:5.0f} ms of"
              f" CPU, {1000 * statistics.median(wall):5.0f} ms wall = {100 * spent / 10:4.1f}% of"
              " a core at one evaluation every 10 s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
