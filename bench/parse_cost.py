"""The fixed cost of parsing one small block: what the live watcher pays on every look.

At 100 lines/s the watcher looks every 0.8 s and reads ~80 new lines. This times
`blocks.parse_block` on such a block (realistic nginx combined lines, `bench.gen_realistic`)
over many calls and prints CPU per call: the calling thread's (`time.thread_time`) and the
whole process's (`time.process_time`, which adds polars' worker threads). Not a test: it
prints figures; compare them before and after a change, in the same conditions.

    python -m bench.parse_cost [--lines 80] [--calls 300] [--format combined]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.gen_realistic import Traffic, now_stamps
from conflictradar.ingest.blocks import Context, parse_block
from conflictradar.ingest.formats import ParserState, get_format
from conflictradar.ingest.settings import load_settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lines", type=int, default=80)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--format", default="combined")
    args = p.parse_args()
    settings = load_settings(env={})
    fmt = get_format(args.format, settings.formats)
    ctx = Context(settings, (), ())
    data = Traffic(7).lines(args.lines, now_stamps(args.lines))
    state = ParserState()

    def once() -> None:
        parse_block(data, 0, 1, False, (), fmt, None, state, ctx, "/var/log/x.log", final=False)

    for _ in range(20):  # warm up: imports, caches, polars' thread pool
        once()
    proc, thread = [], []
    for _ in range(args.rounds):
        p0, t0 = time.process_time(), time.thread_time()
        for _ in range(args.calls):
            once()
        proc.append((time.process_time() - p0) / args.calls * 1e3)
        thread.append((time.thread_time() - t0) / args.calls * 1e3)
    print(f"parse_block of {args.lines} {args.format} lines, {args.rounds} rounds of"
          f" {args.calls} calls: process CPU median {statistics.median(proc):.2f} ms/call"
          f" (rounds {', '.join(f'{x:.2f}' for x in proc)}); calling thread"
          f" {statistics.median(thread):.2f} ms/call")  # fmt: skip


if __name__ == "__main__":
    main()
