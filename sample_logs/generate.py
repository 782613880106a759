"""Command line and batch output: simulate, then write the log files, labels.csv and spikes.csv.

    python -m conflictradar.sample_logs.generate --out DIR [--seed 42] [--lines N] [--start T] [--hours H]
    python -m conflictradar.sample_logs.generate --live --out DIR [--rate 50] [--spike-every 300]

Same seed and arguments give byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from conflictradar.sample_logs.engine import simulate
from conflictradar.sample_logs.formats import format_line, iso_utc
from conflictradar.sample_logs.model import FILES, SECOND, Request, Spike
from conflictradar.sample_logs.spikes import GLOBAL
from conflictradar.sample_logs.timing import stamps, written_at

DEFAULT_SEED = 42
DEFAULT_LINES = 6_500
DEFAULT_START = "2025-06-02T08:00:00Z"
LABELS_HEADER = "file,line,cause\n"
SPIKES_HEADER = "start,end,scope,value,file\n"


@dataclass(frozen=True, slots=True)
class Label:
    file: str
    line: int
    cause: str


def parse_start(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * SECOND + dt.microsecond


def lay_out(requests: list[Request]) -> tuple[dict[str, list[str]], list[Label]]:
    """Lines per file in write order, and the label of every 409 line."""
    by_file: dict[str, list[Request]] = {f.name: [] for f in FILES}
    for r in requests:
        by_file[r.source].append(r)
    lines: dict[str, list[str]] = {}
    labels: list[Label] = []
    for name, reqs in by_file.items():
        ordinal = {
            r.seq: i + 1 for i, r in enumerate(sorted(reqs, key=lambda r: (r.start_us, r.seq)))
        }
        ordered = sorted(reqs, key=lambda r: (written_at(r), r.seq))
        lines[name] = [format_line(r, ordinal[r.seq]) for r in ordered]
        labels.extend(
            Label(name, i + 1, str(r.cause)) for i, r in enumerate(ordered) if r.status == 409
        )
    return lines, labels


def in_spike(spike: Spike, r: Request) -> bool:
    return (
        r.status == 409
        and spike.start_us <= stamps(r)[0] < spike.end_us
        and (spike.scope == GLOBAL or r.endpoint == spike.scope)
    )


def spike_row(spike: Spike, conflicts: list[Request]) -> str:
    """`start,end,scope,value,file`: value = 409s in the window and scope, file = where they are."""
    hits = [r for r in conflicts if in_spike(spike, r)]
    files = sorted({r.source for r in hits})
    where = "*" if spike.scope == GLOBAL or len(files) > 2 else ";".join(files)
    return (
        f"{iso_utc(spike.start_us, 0)},{iso_utc(spike.end_us, 0)},{spike.scope},{len(hits)},"
        f"{where}\n"
    )


@dataclass(frozen=True, slots=True)
class Written:
    lines: int
    labels: tuple[Label, ...]


def write_batch(
    out: Path, *, seed: int, lines: int, start_us: int, hours: float, daily: bool = True
) -> Written:
    """Generate and write one data set into `out` (created if needed); `daily=False`: flat."""
    requests, plan = simulate(seed, lines, start_us, hours, daily=daily)
    per_file, labels = lay_out(requests)
    out.mkdir(parents=True, exist_ok=True)
    for name, file_lines in per_file.items():
        (out / name).write_text("".join(line + "\n" for line in file_lines), encoding="utf-8")
    (out / "labels.csv").write_text(
        LABELS_HEADER + "".join(f"{lb.file},{lb.line},{lb.cause}\n" for lb in labels),
        encoding="utf-8",
    )
    conflicts = [r for r in requests if r.status == 409]
    (out / "spikes.csv").write_text(
        SPIKES_HEADER
        + "".join(spike_row(s, conflicts) for s in sorted(plan, key=lambda s: s.start_us)),
        encoding="utf-8",
    )
    return Written(len(requests), tuple(labels))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m conflictradar.sample_logs.generate", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write the logs into")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--lines", type=int, default=DEFAULT_LINES, help="total lines (batch)")
    p.add_argument("--start", default=DEFAULT_START, help="first timestamp, ISO 8601 (batch)")
    p.add_argument("--hours", type=float, default=24.0, help="time span of the data (batch)")
    p.add_argument("--live", action="store_true", help="append traffic in real time until stopped")
    p.add_argument("--rate", type=float, default=50.0, help="lines per second (live)")
    p.add_argument("--spike-every", type=float, default=300.0, help="seconds between spikes (live)")
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after N seconds (live; 0 = never)"
    )
    args = p.parse_args(argv)
    try:
        parse_start(args.start)
    except ValueError:
        p.error(f"--start {args.start!r} is not an ISO 8601 time such as {DEFAULT_START}")
    if args.lines < 100 or args.hours <= 0 or args.rate <= 0 or args.spike_every <= 0:
        p.error("--lines must be >= 100; --hours, --rate and --spike-every must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.live:
        from conflictradar.sample_logs.live import run_live

        stop = threading.Event()
        if args.duration > 0:
            timer = threading.Timer(args.duration, stop.set)
            timer.daemon = True
            timer.start()
        print(f"writing live traffic to {args.out} (Ctrl-C stops)", file=sys.stderr)
        try:
            run_live(
                args.out, seed=args.seed, rate=args.rate, spike_every_s=args.spike_every, stop=stop
            )
        except KeyboardInterrupt:
            stop.set()
        return 0
    began = time.perf_counter()
    written = write_batch(
        args.out,
        seed=args.seed,
        lines=args.lines,
        start_us=parse_start(args.start),
        hours=args.hours,
    )
    labels = written.labels
    causes = Counter(lb.cause for lb in labels)
    print(
        f"wrote {written.lines} lines, {len(labels)} labelled 409s to {args.out} "
        f"in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    for cause, n in causes.most_common():
        print(f"  {cause:20} {n:6} ({100 * n / len(labels):.1f}%)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
