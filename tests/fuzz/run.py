"""`make fuzz`: at least 1M mutated lines per format family through the real one-shot ingest.

A family is a format family of the registry (json, text, envoy's text-or-JSON; the `nginx:` and
`apache:` patterns with text) or the container envelopes; its lines are spread evenly over its
formats, each reported on its own row too. Its lines are seed lines mutated 1-3 times (byte
insertions, truncations, swaps, JSON values replaced by huge numbers, nulls and nested objects,
impossible dates...), with some left intact and some arbitrary bytes, written to files and
ingested whole into a fresh DuckDB file. Per family it reports lines tried, stored, rejected,
skipped, unaccounted (lines neither stored, rejected nor skipped) and crashes (ingest raising or
a file ending in error); the exit status is 1 if any family has a crash or an unaccounted line.

    python -m tests.fuzz.run [--lines 1000000] [--seed 1] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from conflictradar.ingest.formats import all_formats
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.fuzz.corpus import ENVELOPES, seeds, specs, wrap
from tests.fuzz.mutations import mutate

FILE_LINES = 250_000
_numbers = itertools.count()


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


Unit = tuple[str, str | None]  # (format spec, envelope or None)


def families() -> dict[str, list[Unit]]:
    """Format families of the registry (its `family` of each format: json, text, envoy's
    text-or-JSON) plus the `nginx:`/`apache:` patterns with text, and the container envelopes
    around every format (one envelope per format, in turn)."""
    kinds = {f.name: f.family for f in all_formats()}
    out: dict[str, list[Unit]] = {}
    for spec in specs():
        family = {"json": "json", "any": "envoy (text + JSON)"}.get(kinds.get(spec, "text"), "text")
        out.setdefault(family, []).append((spec, None))
    out["envelopes"] = [(spec, ENVELOPES[i % len(ENVELOPES)]) for i, spec in enumerate(specs())]
    return out


def write_unit(folder: Path, unit: Unit, total: int, rng: random.Random) -> list[Path]:
    """Files of at most FILE_LINES lines of one format (maybe in an envelope)."""
    spec, envelope = unit
    headers, _ = seeds(spec)
    paths = []
    for start in range(0, total, FILE_LINES):
        lines = [*headers, *fuzz_lines(spec, min(FILE_LINES, total - start), rng)]
        if envelope:
            lines = [wrap(envelope, line, k) for k, line in enumerate(lines)]
        path = folder / f"{next(_numbers):05d}.log"  # never reused: counts go by file
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    return paths


def run_unit(store: Store, unit: Unit, total: int, rng: random.Random, folder: Path) -> Tally:
    spec, envelope = unit
    tally = Tally(f"{spec[:24]}{' in ' + envelope if envelope else ''}")
    paths = write_unit(folder, unit, total, rng)
    tally.tried = sum(p.read_bytes().count(b"\n") for p in paths)
    started = time.perf_counter()
    try:
        report = Ingester(store, load_settings(db=store.path, env={}), forced=spec).ingest(paths)
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
    names = [str(p) for p in paths]
    stored = store.con.execute("SELECT count(*) FROM requests WHERE list_contains(?, file)",
                               [names]).fetchone()  # fmt: skip
    rejected = store.con.execute("SELECT count(*) FROM rejects WHERE list_contains(?, file)",
                                 [names]).fetchone()  # fmt: skip
    tally.stored = int(stored[0]) if stored else 0
    tally.rejected = int(rejected[0]) if rejected else 0
    tally.skipped = report.total("skipped")
    if (tally.stored, tally.rejected) != (report.total("parsed"), report.total("rejected")):
        tally.errors.append(
            f"report says {report.total('parsed')} parsed, {report.total('rejected')} rejected;"
            f" the database holds {tally.stored} and {tally.rejected}"
        )
    for p in paths:
        p.unlink()
    return tally


def _row(t: Tally) -> str:
    return (f"| {t.family} | {t.tried:,} | {t.stored:,} | {t.rejected:,} | {t.skipped:,} |"
            f" {t.unaccounted:,} | {t.crashes} | {t.seconds:.1f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per family")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="families to run (default: all)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # rejected lines are the point here, not news
    chosen = {k: v for k, v in families().items() if not args.only or k in args.only}
    header = ("family / format", "lines tried", "stored", "rejected", "skipped", "unaccounted",
              "crashes", "ingest s")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rng = random.Random(args.seed)
    bad = False
    for family, units in chosen.items():
        total = Tally(f"**{family}**")
        per_unit = -(-args.lines // len(units))
        with tempfile.TemporaryDirectory(prefix="conflictradar-fuzz-") as tmp:
            folder = Path(tmp) / "files"
            folder.mkdir()
            db = Path(tmp) / "fuzz.duckdb"
            with Store.open(db) as store:
                tallies = [run_unit(store, unit, per_unit, rng, folder) for unit in units]
        for t in tallies:
            print(_row(t), flush=True)
            for name in ("tried", "stored", "rejected", "skipped", "crashes", "seconds"):
                setattr(total, name, getattr(total, name) + getattr(t, name))
            for error in t.errors[:5]:
                print(f"\n{t.family}: {error}", file=sys.stderr)
            bad = bad or bool(t.crashes or t.unaccounted)
        print(_row(total), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
