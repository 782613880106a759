"""`make eval`: classify freshly generated labelled sets and score them against their labels.

Each set is one function in EVALUATIONS returning an Outcome; another labelled set (alert
quality, a new format family) adds its own function. Scores are by request (SPEC 3): macro-F1 over
causes, requests counted more than once, and requests whose tiers got different causes.

- today's set: `sample_logs.generate` (N lines, default 250,000; one line per request);
- tiered set: `sample_logs.tiered` (gateway and service logs of the same requests, arriving
  service-first), scored in `bench.eval_tiered`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.eval_tiered import conflict_lines, score_requests
from bench.eval_tiered import evaluate as evaluate_tiered
from conflictradar.ingest.causes import Cause
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

TARGET_MACRO_F1 = 0.99


@dataclass(frozen=True)
class Outcome:
    name: str
    macro_f1: float
    counted_twice: int
    disagreements: int

    @property
    def ok(self) -> bool:
        return (
            self.macro_f1 >= TARGET_MACRO_F1 and self.counted_twice == 0 and self.disagreements == 0
        )


def score(pairs: pl.DataFrame) -> tuple[pl.DataFrame, float]:
    """Per-cause precision/recall/F1 from a frame of (label, predicted)."""
    rows = []
    for cause in [c.value for c in Cause]:
        tp = pairs.filter((pl.col("label") == cause) & (pl.col("predicted") == cause)).height
        fp = pairs.filter((pl.col("label") != cause) & (pl.col("predicted") == cause)).height
        fn = pairs.filter((pl.col("label") == cause) & (pl.col("predicted") != cause)).height
        support = tp + fn
        if support == 0 and fp == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((cause, support, precision, recall, f1))
    table = pl.DataFrame(
        rows, schema=["cause", "support", "precision", "recall", "f1"], orient="row"
    )
    f1s = table["f1"].to_list()
    return table, sum(f1s) / len(f1s) if f1s else 0.0


def report(name: str, pairs: pl.DataFrame, counted_twice: int, disagreements: int) -> Outcome:
    """Print one set's scores and main confusions."""
    table, macro = score(pairs)
    print(f"\n{'cause':<22} {'support':>8} {'precision':>10} {'recall':>8} {'F1':>8}")
    for cause, support, precision, recall, f1 in table.iter_rows():
        print(f"{cause:<22} {support:>8,} {precision:>10.4f} {recall:>8.4f} {f1:>8.4f}")
    print(f"\n{name}: macro-F1 by request {macro:.4f} (target >= {TARGET_MACRO_F1}),"
          f" requests counted twice {counted_twice} (target 0),"
          f" tier disagreements {disagreements} (target 0)")  # fmt: skip
    wrong = (
        pairs.filter(pl.col("label") != pl.col("predicted"))
        .group_by("label", "predicted")
        .len()
        .sort("len", descending=True)
    )
    if wrong.height:
        print("main confusions (label -> predicted: count):")
        for label, pred, n in wrong.head(10).iter_rows():
            print(f"  {label} -> {pred}: {n}")
    return Outcome(name, macro, counted_twice, disagreements)


def sample_set(args: argparse.Namespace) -> Outcome:
    """Today's set: one line per request, many formats and hosts."""
    with tempfile.TemporaryDirectory(prefix="conflictradar-eval-") as tmp:
        out = Path(tmp) / "logs"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "conflictradar.sample_logs.generate", "--out", str(out), "--seed",
             str(args.seed), "--lines", str(args.lines)],
            check=True,
        )  # fmt: skip
        generated = time.perf_counter() - started
        db = Path(tmp) / "eval.duckdb"
        settings = load_settings(db=db, env={})
        started = time.perf_counter()
        with Store.open(db) as store:
            ingested = Ingester(store, settings).ingest(expand_paths([str(out)]))
            ingest_s = time.perf_counter() - started
            found = conflict_lines(store)
        labels = pl.read_csv(out / "labels.csv").with_row_index("request")
    lines = ingested.total("lines")
    print(f"\n== today's set: {lines:,} lines (seed {args.seed}), generated in {generated:.1f} s,"
          f" ingested and classified in {ingest_s:.1f} s ({lines / ingest_s:,.0f} lines/s);"
          f" {labels.height:,} labelled 409 requests ==")  # fmt: skip
    pairs, twice, disagree = score_requests(labels, found)
    return report("today's set", pairs, twice, disagree)


def tiered_set(args: argparse.Namespace) -> Outcome:
    """Gateway and service logs of the same requests, the service's arriving first."""
    got = evaluate_tiered(args.seed, args.requests)
    labelled = got.pairs.filter(pl.col("label") != "(not a labelled 409)").height
    print(f"\n== tiered set: {got.lines:,} lines of {args.requests:,} requests (seed {args.seed}),"
          f" ingested service-first then gateway in {got.seconds:.1f} s"
          f" ({got.lines / got.seconds:,.0f} lines/s); {labelled:,} labelled 409 requests ==")  # fmt: skip
    return report("tiered set", got.pairs, got.counted_twice, got.disagreements)


EVALUATIONS: tuple[Callable[[argparse.Namespace], Outcome], ...] = (sample_set, tiered_set)


def main() -> int:
    p = argparse.ArgumentParser(prog="make eval")
    p.add_argument("--lines", type=int, default=250_000, help="today's set: lines")
    p.add_argument("--requests", type=int, default=40_000, help="tiered set: requests")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = p.parse_args()
    outcomes = [run(args) for run in EVALUATIONS]
    print()
    for o in outcomes:
        print(f"{o.name}: {'met' if o.ok else 'NOT met'} (macro-F1 {o.macro_f1:.4f},"
              f" counted twice {o.counted_twice}, tier disagreements {o.disagreements})")  # fmt: skip
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
