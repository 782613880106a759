"""The classification query's cheaper forms give exactly the rows of the full one."""

from __future__ import annotations

from pathlib import Path

from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.pipeline import Ingester, expand_paths
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

REPO = Path(__file__).resolve().parents[1]


def _conflicts(tmp: Path, name: str, force_full: bool) -> list[tuple[object, ...]]:
    db = tmp / f"{name}.duckdb"
    settings = load_settings(db=db, env={})
    with Store.open(db) as store:
        ingester = Ingester(store, settings)
        assert ingester.classifier is not None
        if force_full:
            ingester.classifier.sql_unlinked = ingester.classifier.sql
        # Tiered traffic (links in some ranges, none in others) and single-tier traffic.
        ingester.ingest(expand_paths([str(REPO / "sample_logs" / d) for d in ("tiered", "data")]))
        # Re-explained in short ranges too, as a watcher does after each look.
        row = store.con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
        assert row is not None
        lo, hi = row
        step = (hi - lo) / 40
        with store.transaction() as con:
            for i in range(40):
                ingester.classifier.classify_range(con, lo + i * step, lo + (i + 1) * step)
        links = store.con.execute("SELECT count(*) FROM request_links").fetchone()
        assert links is not None and links[0] > 0
        return store.con.execute(
            "SELECT ts, file, line, cause, evidence, confidence, lines FROM conflicts ORDER BY ALL"
        ).fetchall()


def test_the_query_without_links_explains_exactly_as_the_full_one(tmp_path: Path) -> None:
    fast = _conflicts(tmp_path, "fast", force_full=False)
    full = _conflicts(tmp_path, "full", force_full=True)
    assert len(full) > 1000
    assert fast == full


def test_both_forms_are_built_from_the_same_query() -> None:
    c = Classifier(load_settings(env={}).classify)
    assert "request_links" in c.sql and "request_links" not in c.sql_unlinked
    assert c.sql_unlinked.count("ok AS (") == 1 and "per_request" not in c.sql_unlinked
