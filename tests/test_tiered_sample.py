"""The tiered labelled set: gateway and service logs of the same requests, and how it is scored."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from bench.eval_tiered import evaluate, score_requests
from bench.evaluate import score
from conflictradar.sample_logs import tiered


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        tiered.write(out, seed, 600, tiered.DEFAULT_START_US)
    names = [*tiered.GATEWAYS, *tiered.SERVICES, "labels.csv"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert (a / "labels.csv").read_bytes() != (c / "labels.csv").read_bytes()


def test_every_labelled_request_has_its_gateway_line_and_the_service_line(tmp_path: Path) -> None:
    tiered.write(tmp_path, 5, 2_000, tiered.DEFAULT_START_US)
    labels = pl.read_csv(tmp_path / "labels.csv")
    per = labels.group_by("request").agg(
        pl.col("file").is_in(list(tiered.GATEWAYS)).sum().alias("gateway"),
        pl.col("file").is_in(list(tiered.SERVICES)).sum().alias("service"),
        pl.col("cause").n_unique().alias("causes"),
    )
    assert per["gateway"].to_list() == [1] * per.height
    assert set(per["service"]) == {0, 1}  # 0: the gateway reached no upstream
    assert set(per["causes"]) == {1}
    assert set(labels["cause"]) >= {"version_mismatch", "gateway_conflict", "concurrent_update",
                                    "retry_after_success", "unknown"}  # fmt: skip


def test_service_first_arrival_is_scored_perfectly() -> None:
    got = evaluate(seed=9, requests=1_500)
    _table, macro = score(got.pairs)
    assert (got.counted_twice, got.disagreements) == (0, 0)
    assert macro == 1.0, got.pairs.filter(pl.col("label") != pl.col("predicted"))


def test_scoring_counts_a_request_twice_and_a_tier_disagreement() -> None:
    labels = pl.DataFrame(
        {
            "request": [1, 1, 2],
            "file": ["gw", "svc", "gw"],
            "line": [1, 1, 2],
            "cause": ["version_mismatch", "version_mismatch", "unknown"],
        }
    )
    found = pl.DataFrame(
        {
            "head_file": ["gw", "svc", "x"],
            "head_line": [1, 1, 9],
            "cause": ["version_mismatch", "duplicate_create", "unknown"],
            "file": ["gw", "svc", "x"],
            "line": [1, 1, 9],
        }
    )
    pairs, twice, disagree = score_requests(labels, found)
    assert (twice, disagree) == (1, 1)
    assert sorted(pairs.rows()) == [
        ("(not a labelled 409)", "unknown"),
        ("unknown", "(not classified)"),
        ("version_mismatch", "version_mismatch"),
    ]


def test_bundled_tiered_sample_is_current(tmp_path: Path) -> None:
    bundled = Path(__file__).resolve().parents[1] / "sample_logs" / "tiered"
    tiered.write(tmp_path, 42, 2_000, tiered.DEFAULT_START_US)  # as `make sample-logs` does
    for name in (*tiered.GATEWAYS, *tiered.SERVICES, "labels.csv"):
        assert (tmp_path / name).read_bytes() == (bundled / name).read_bytes(), (
            f"{name}: regenerate sample_logs/tiered (make sample-logs)"
        )
