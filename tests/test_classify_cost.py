"""The classification query's cheaper forms give exactly the rows of the full one."""

from __future__ import annotations

from pathlib import Path

from bench.gen_realistic import write_realistic
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

REPO = Path(__file__).resolve().parents[1]


# Sample files with no error text and no request links: only the plain form applies to them.
PLAIN_FILES = ("documents-envoy.log", "inventory-traefik.jsonl", "orders-gw-a.log",
               "orders-gw-b.log", "users-alb.log")  # fmt: skip


def _conflicts(
    tmp: Path, name: str, force_full: bool, paths: list[Path] | None = None
) -> list[tuple[object, ...]]:
    db = tmp / f"{name}.duckdb"
    settings = load_settings(db=db, env={})
    with Store.open(db) as store:
        ingester = Ingester(store, settings)
        assert ingester.classifier is not None
        if force_full:
            ingester.classifier.sql_unlinked = ingester.classifier.sql
            ingester.classifier.sql_plain = ingester.classifier.sql
        # By default tiered traffic (links in some ranges, none in others) and single-tier
        # traffic with error texts in every range.
        ingester.ingest(paths or expand_paths([str(REPO / "sample_logs" / d)
                                               for d in ("tiered", "data")]))  # fmt: skip
        # Re-explained in short ranges too, as a watcher does after each look.
        row = store.con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
        assert row is not None
        lo, hi = row
        step = (hi - lo) / 40
        with store.transaction() as con:
            for i in range(40):
                ingester.classifier.classify_range(con, lo + i * step, lo + (i + 1) * step)
        links = store.con.execute("SELECT count(*) FROM request_links").fetchone()
        assert links is not None and (links[0] > 0) == (paths is None)
        return store.con.execute(
            "SELECT ts, file, line, cause, evidence, confidence, lines FROM conflicts ORDER BY ALL"
        ).fetchall()


def test_the_query_without_links_explains_exactly_as_the_full_one(tmp_path: Path) -> None:
    fast = _conflicts(tmp_path, "fast", force_full=False)
    full = _conflicts(tmp_path, "full", force_full=True)
    assert len(full) > 1000
    assert fast == full


def test_the_query_without_texts_explains_exactly_as_the_full_one(tmp_path: Path) -> None:
    """Access logs (no error texts, no links): the plain form, as a live watcher of a gateway
    runs it, gives the full query's rows: retries, races, gateway-made 409s and inferred causes
    with their evidence, byte for byte."""
    realistic = write_realistic(tmp_path / "realistic.log", 30_000, seed=3)
    paths = [REPO / "sample_logs" / "data" / f for f in PLAIN_FILES] + [realistic]
    fast = _conflicts(tmp_path, "plain", force_full=False, paths=paths)
    full = _conflicts(tmp_path, "plainfull", force_full=True, paths=paths)
    assert len(full) > 1500
    assert fast == full
    causes = {row[3] for row in full}
    assert {"retry_after_success", "concurrent_update", "gateway_conflict", "duplicate_create",
            "version_mismatch", "state_conflict"} <= causes  # fmt: skip
    # ... and the plain form is what explained them: no range of theirs holds a text or a link.
    db = tmp_path / "plain.duckdb"
    classifier = Classifier(load_settings(db=db, env={}).classify)
    with Store.open(db) as store:
        lo, hi = store.con.execute("SELECT min(ts), max(ts) FROM requests").fetchone() or (0, 0)
        holds = classifier._range_holds(store.con, lo, hi)
    assert (holds.conflicts, holds.linked, holds.texts, holds.relink) == (True, False, False, False)


def test_the_forms_are_built_from_the_same_query() -> None:
    c = Classifier(load_settings(env={}).classify)
    assert "request_links" in c.sql and "request_links" not in c.sql_unlinked
    assert c.sql_unlinked.count("ok AS (") == 1 and "per_request" not in c.sql_unlinked
    assert "request_links" not in c.sql_plain and "text_matches" not in c.sql_plain
    for cte in ("ok AS (", "retry AS (", "race AS ("):
        assert c.sql_plain[c.sql_plain.index(cte) :].split("),\n")[0] in c.sql_unlinked
