"""`make eval`, tiered set: gateway and service logs of the same requests, scored by request.

The service logs are ingested first; the gateway logs arrive later in a second run (another
host, minutes late), so every 409 is first explained from the service line alone and must be
re-explained when its client-facing line arrives. Scored per labelled request: its cause, whether
it was counted more than once, and whether its tiers got different causes.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from conflictradar.sample_logs import tiered


@dataclass(frozen=True)
class Scored:
    """A labelled set's result: pairs of (label, predicted) per request and the two checks."""

    pairs: pl.DataFrame
    counted_twice: int
    disagreements: int
    lines: int
    seconds: float


def conflict_lines(store: Store) -> pl.DataFrame:
    """One row per line of every stored conflict: head (file, line), cause, file, line."""
    rows = store.con.execute(
        "SELECT regexp_extract(file, '[^/]+$') AS head_file, line AS head_line, cause,"
        " regexp_extract(l, '([^/]+):(\\d+)$', 1) AS file,"
        " CAST(regexp_extract(l, ':(\\d+)$', 1) AS BIGINT) AS line"
        " FROM (SELECT *, unnest(lines) AS l FROM conflicts)"
    ).fetchall()
    schema = {"head_file": pl.String, "head_line": pl.Int64, "cause": pl.String,
              "file": pl.String, "line": pl.Int64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row")


def score_requests(labels: pl.DataFrame, found: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """labels: request, file, line, cause (every line of every labelled 409 request);
    found: conflict_lines(). Returns (label, predicted) per request and per unlabelled conflict,
    the requests counted more than once and the requests whose tiers got different causes."""
    touched = labels.join(found, on=["file", "line"], how="left")
    per = touched.group_by("request").agg(
        pl.col("cause").first().alias("label"),
        pl.struct("head_file", "head_line").drop_nulls().n_unique().alias("rows"),
        pl.col("cause_right").drop_nulls().n_unique().alias("causes"),
        pl.col("cause_right").drop_nulls().first().alias("predicted"),
    )
    heads = found.select("head_file", "head_line", "cause").unique()
    labelled_heads = (
        found.join(labels.select("file", "line"), on=["file", "line"], how="semi")
        .select("head_file", "head_line")
        .unique()
    )
    stray = heads.join(labelled_heads, on=["head_file", "head_line"], how="anti")
    pairs = pl.concat([
        per.select("label", pl.col("predicted").fill_null("(not classified)")),
        stray.select(pl.lit("(not a labelled 409)").alias("label"),
                     pl.col("cause").alias("predicted")),
    ])  # fmt: skip
    twice = per.filter(pl.col("rows") > 1).height
    disagree = per.filter(pl.col("causes") > 1).height
    return pairs, twice, disagree


def evaluate(seed: int, requests: int) -> Scored:
    with tempfile.TemporaryDirectory(prefix="conflictradar-eval-tiered-") as tmp:
        out = Path(tmp) / "logs"
        lines, _ = tiered.write(out, seed, requests, tiered.DEFAULT_START_US)
        db = Path(tmp) / "tiered.duckdb"
        settings = load_settings(db=db, env={})
        started = time.perf_counter()
        with Store.open(db) as store:
            # services first, gateways late: two runs, as two hosts' logs would arrive
            Ingester(store, settings).ingest([out / n for n in tiered.SERVICES])
            Ingester(store, settings).ingest([out / n for n in tiered.GATEWAYS])
            seconds = time.perf_counter() - started
            found = conflict_lines(store)
        labels = pl.read_csv(out / "labels.csv")
    pairs, twice, disagree = score_requests(labels, found)
    return Scored(pairs, twice, disagree, lines, seconds)
