"""`make eval`: classify a freshly generated labelled set and score it against its labels.

Generates N lines (default 250,000) with a seed different from the bundled sample, ingests them
into a fresh database, joins `conflicts` to `labels.csv` by (file, line) and prints per-cause
precision, recall and F1, the macro-F1 and the main confusions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from ingest.causes import Cause
from ingest.pipeline import Ingester, expand_paths
from ingest.settings import load_settings
from ingest.store import Store

TARGET_MACRO_F1 = 0.99


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


def main() -> int:
    p = argparse.ArgumentParser(prog="make eval")
    p.add_argument("--lines", type=int, default=250_000)
    p.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="conflictradar-eval-") as tmp:
        out = Path(tmp) / "logs"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sample_logs.generate", "--out", str(out), "--seed",
             str(args.seed), "--lines", str(args.lines)],
            check=True,
        )  # fmt: skip
        generated = time.perf_counter() - started
        db = Path(tmp) / "eval.duckdb"
        settings = load_settings(db=db, env={})
        started = time.perf_counter()
        with Store.open(db) as store:
            report = Ingester(store, settings).ingest(expand_paths([str(out)]))
            ingest_s = time.perf_counter() - started
            rows = store.con.execute(
                "SELECT regexp_extract(file, '[^/]+$') AS file, line, cause AS predicted"
                " FROM conflicts"
            ).fetchall()
        predicted = pl.DataFrame(rows, schema=["file", "line", "predicted"], orient="row")
        labels = pl.read_csv(out / "labels.csv").rename({"cause": "label"})
    pairs = labels.join(predicted, on=["file", "line"], how="full", coalesce=True).with_columns(
        pl.col("label").fill_null("(not a labelled 409)"),
        pl.col("predicted").fill_null("(not classified)"),
    )
    table, macro = score(pairs)
    print(f"eval: {report.total('lines'):,} lines (seed {args.seed}), generated in {generated:.1f} s,"
          f" ingested and classified in {ingest_s:.1f} s; {labels.height:,} labelled 409s")  # fmt: skip
    print(f"\n{'cause':<22} {'support':>8} {'precision':>10} {'recall':>8} {'F1':>8}")
    for cause, support, precision, recall, f1 in table.iter_rows():
        print(f"{cause:<22} {support:>8,} {precision:>10.4f} {recall:>8.4f} {f1:>8.4f}")
    print(f"\nmacro-F1 {macro:.4f} (target >= {TARGET_MACRO_F1})")
    wrong = (
        pairs.filter(pl.col("label") != pl.col("predicted"))
        .group_by("label", "predicted")
        .len()
        .sort("len", descending=True)
    )
    if wrong.height:
        print("\nmain confusions (label -> predicted: count):")
        for label, pred, n in wrong.head(10).iter_rows():
            print(f"  {label} -> {pred}: {n}")
    else:
        print("no confusions")
    return 0 if macro >= TARGET_MACRO_F1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
