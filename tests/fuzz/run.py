"""`make fuzz`: at least 1M mutated lines per format family through the real one-shot ingest.

A family is each `--format` of the registry (plus an `nginx:` directive), and each container
envelope around lines of every format. Its lines are seed lines mutated 1-3 times (byte
insertions, truncations, swaps, JSON values replaced by huge numbers, nulls and nested objects,
impossible dates...), with some left intact and some arbitrary bytes, written to files and
ingested whole into a fresh DuckDB file. Per family it reports lines tried, stored, rejected,
skipped, unaccounted (lines neither stored, rejected nor skipped) and crashes (ingest raising or
a file ending in error); the exit status is 1 if any family has a crash or an unaccounted line.

    python -m tests.fuzz.run [--lines 1000000] [--seed 1] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ingest.pipeline import Ingester, IngestReport
from ingest.settings import load_settings
from ingest.store import Store
from tests.fuzz.corpus import ENVELOPES, seeds, specs, wrap
from tests.fuzz.mutations import mutate

FILE_LINES = 250_000


@dataclass
class Tally:
    family: str
    tried: int = 0
    stored: int = 0
    rejected: int = 0
    skipped: int = 0
    crashes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def unaccounted(self) -> int:
        return self.tried - self.stored - self.rejected - self.skipped


def fuzz_lines(spec: str, count: int, rng: random.Random) -> list[bytes]:
    """`count` lines for `spec`: 85% mutated seed lines, 10% intact ones, 5% arbitrary bytes.
    Mutations may insert line breaks: the file's line count is measured, not assumed."""
    _, lines = seeds(spec)
    pick = rng.randrange
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            out.append(rng.randbytes(rng.randrange(1, 160)).replace(b"\n", b" "))
            continue
        line = lines[pick(len(lines))]
        out.append(line if roll < 0.15 else mutate(line, pick, rounds=1 + pick(3)))
    return out


def write_files(
    folder: Path, family: str, total: int, rng: random.Random
) -> list[tuple[Path, str]]:
    """Files of at most FILE_LINES lines for `family`, each with the format it is read as;
    envelope families cycle through every format for their inner lines (one per file)."""
    paths = []
    envelope = family.removeprefix("envelope:") if family.startswith("envelope:") else None
    inner = specs()
    for i, start in enumerate(range(0, total, FILE_LINES)):
        n = min(FILE_LINES, total - start)
        spec = inner[i % len(inner)] if envelope else family
        headers, _ = seeds(spec)
        lines = [*headers, *fuzz_lines(spec, n, rng)]
        if envelope:
            lines = [wrap(envelope, line, k) for k, line in enumerate(lines)]
        path = folder / f"{i:03d}.log"
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append((path, spec))
    return paths


def run_family(family: str, total: int, rng: random.Random, work: Path) -> Tally:
    tally = Tally(family)
    folder = work / "files"
    folder.mkdir()
    try:
        paths = write_files(folder, family, total, rng)
        tally.tried = sum(p.read_bytes().count(b"\n") for p, _ in paths)
        db = work / "fuzz.duckdb"
        started = time.perf_counter()
        report = IngestReport()
        try:
            with Store.open(db) as store:
                settings = load_settings(db=db, env={})
                for spec in dict.fromkeys(spec for _, spec in paths):
                    mine = [p for p, s in paths if s == spec]
                    report.files += Ingester(store, settings, forced=spec).ingest(mine).files
                stored = store.con.execute("SELECT count(*) FROM requests").fetchone()
                rejected = store.con.execute("SELECT count(*) FROM rejects").fetchone()
        except Exception as exc:
            tally.crashes += 1
            tally.errors.append("".join(traceback.format_exception(exc))[-2000:])
            return tally
        tally.seconds = time.perf_counter() - started
        for f in report.files:
            if f.status == "error":
                tally.crashes += 1
            if f.status != "ok":  # an unrecognised file leaves its lines unaccounted
                tally.errors.append(f"{f.path}: {f.status} {f.message}")
        tally.stored = int(stored[0]) if stored else 0
        tally.rejected = int(rejected[0]) if rejected else 0
        tally.skipped = report.total("skipped")
        if (tally.stored, tally.rejected) != (report.total("parsed"), report.total("rejected")):
            tally.errors.append(
                f"report says {report.total('parsed')} parsed, {report.total('rejected')} rejected;"
                f" the database holds {tally.stored} and {tally.rejected}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(exist_ok=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per family")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="families to run (default: all)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # rejected lines are the point here, not news
    families = [*specs(), *(f"envelope:{e}" for e in ENVELOPES)]
    if args.only:
        families = [f for f in families if f in args.only or f.split(" ")[0] in args.only]
    header = ("family", "lines tried", "stored", "rejected", "skipped", "unaccounted",
              "crashes", "ingest s")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    tallies = []
    with tempfile.TemporaryDirectory(prefix="conflictradar-fuzz-") as tmp:
        for i, family in enumerate(families):
            work = Path(tmp) / "work"
            work.mkdir(exist_ok=True)
            tally = run_family(family, args.lines, random.Random(args.seed * 1000 + i), work)
            tallies.append(tally)
            name = family if len(family) < 30 else family[:27] + "..."
            print(f"| {name} | {tally.tried:,} | {tally.stored:,} | {tally.rejected:,} |"
                  f" {tally.skipped:,} | {tally.unaccounted:,} | {tally.crashes} |"
                  f" {tally.seconds:.1f} |", flush=True)  # fmt: skip
    total = Tally("all")
    for t in tallies:
        total.tried += t.tried
        total.stored += t.stored
        total.rejected += t.rejected
        total.skipped += t.skipped
        total.crashes += t.crashes
        total.seconds += t.seconds
    print(f"| **all** | {total.tried:,} | {total.stored:,} | {total.rejected:,} | {total.skipped:,}"
          f" | {total.unaccounted:,} | {total.crashes} | {total.seconds:.1f} |")  # fmt: skip
    for t in tallies:
        for error in t.errors[:5]:
            print(f"\n{t.family}: {error}", file=sys.stderr)
    bad = total.crashes or any(t.unaccounted for t in tallies)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
