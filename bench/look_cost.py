"""`python -m bench.look_cost`: what one look of the watcher costs over N files that each grew a
little, in-process (a Tailer's `poll_once` in a loop, nothing else running): the per-file toll
that `bench.watch_cost --files N` measures on a real watcher, without its alert evaluation,
served reads or timing noise.

Each round appends `--rate` x `--every` lines of realistic combined traffic spread over the files
(what a look every `--every` seconds finds), then times one look: the process's CPU (user + sys,
polars' and DuckDB's threads included) and its share of one core at that pace.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.gen_realistic import Traffic, now_stamps, past_stamps
from bench.watch_cost import Fleet
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import Settings, load_settings
from conflictradar.ingest.store import Store
from conflictradar.ingest.tail import Tailer


def process_cpu() -> float:
    """This process's CPU seconds so far (user + sys, every thread)."""
    t = os.times()
    return t.user + t.system


@contextmanager
def in_process_watcher(logs: Path, db: Path) -> Iterator[tuple[Settings, Store, Tailer]]:
    """What `watch` runs over `logs`, in this process: its store (with the watcher's sandbox,
    memory limit and threads) and its Tailer, the logs read once already."""
    settings = load_settings(db=db, env={})
    w = settings.watch
    with Store.open(db, sandboxed=True, memory_limit=w.memory_limit, threads=w.threads) as store:
        tailer = Tailer(store, Ingester(store, settings, classify_later=True), [str(logs)],
                        w.poll_interval_s)  # fmt: skip
        try:
            tailer.poll_once()
            yield settings, store, tailer
        finally:
            tailer.close()


class FleetAppends:
    """A fleet's four logs (two Envoy gateways, two ECS services of the same requests): 400
    requests of the past written at once, then `append(n, rate)` adds n lines written `rate` a
    second from now on."""

    def __init__(self, logs: Path, seed: int) -> None:
        self.logs, self.fleet, self.start, self.written = logs, Fleet(seed), time.time(), 0
        for name, data in self.fleet.lines(400, int((self.start - 200) * 1e6), 2).items():
            (logs / name).write_bytes(data)

    def append(self, n: int, rate: int) -> None:
        first = int((self.start + self.written / rate) * 1e6)
        for name, data in self.fleet.lines(n, first, rate).items():
            with (self.logs / name).open("ab") as fh:
                fh.write(data)
        self.written += n


def look_cost(files: int, rate: int, every_s: float, looks: int, seed: int = 7,
              fleet: bool = False) -> list[float]:  # fmt: skip
    """Seconds of CPU of each of `looks` looks over `files` files (`fleet`: the fleet's four)."""
    traffic = Traffic(seed)
    with tempfile.TemporaryDirectory(prefix="conflictradar-bench-look-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        names = [logs / f"site{i}.access.log" for i in range(0 if fleet else files)]
        for name in names:  # each file read once before: later looks read appends
            name.write_bytes(traffic.lines(200, past_stamps(200, 5)))
        fleet_logs = FleetAppends(logs, seed) if fleet else None
        with in_process_watcher(logs, Path(tmp) / "look.duckdb") as (_, _, tailer):
            each = max(1, round(rate * every_s / files))
            spent = []
            for _ in range(looks):
                if fleet_logs is not None:
                    fleet_logs.append(int(rate * every_s), rate)
                for name in names:
                    with name.open("ab") as fh:
                        fh.write(traffic.lines(each, now_stamps(each)))
                before = process_cpu()
                tailer.poll_once(scan=False)
                spent.append(process_cpu() - before)
    return spent


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.look_cost")
    p.add_argument("--files", default="1,4,16,48", help="file counts, comma-separated")
    p.add_argument("--rate", type=int, default=100, help="lines/s over all the files")
    p.add_argument("--every", type=float, default=5.0, help="seconds between looks")
    p.add_argument("--looks", type=int, default=8, help="looks timed per file count")
    p.add_argument("--fleet", action="store_true",
                   help="a fleet's four logs (bench.watch_cost --fleet's traffic) instead")  # fmt: skip
    args = p.parse_args()
    if args.fleet:
        spent = statistics.median(look_cost(4, args.rate, args.every, args.looks, fleet=True))
        print(f"\n== one look of the watcher over a fleet's four logs (two Envoy gateways, two ECS"
              f" services), {args.rate} lines/s, a look every {args.every:g} s (in-process) ==\n"
              f"{1000 * spent:6.0f} ms a look = {100 * spent / args.every:5.1f}% of a core")  # fmt: skip
        return
    print(f"\n== one look of the watcher over N files, {args.rate} lines/s in all, a look every"
          f" {args.every:g} s (in-process; process CPU, medians of {args.looks} looks) ==")  # fmt: skip
    for n in (int(x) for x in args.files.split(",") if x.strip()):
        spent = statistics.median(look_cost(n, args.rate, args.every, args.looks))
        each = max(1, round(args.rate * args.every / n))
        print(f"{n:>4} files, {each:>4} lines each: {1000 * spent:6.0f} ms a look ="
              f" {100 * spent / args.every:5.1f}% of a core", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
