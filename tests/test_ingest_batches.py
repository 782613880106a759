"""One-shot ingest commits several parsed blocks at once: the database it leaves is the one that
committing block by block leaves (rows, line numbers, rejects, causes, rollups, offsets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conflictradar.ingest import pipeline
from conflictradar.ingest.errors import DatabaseError
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.kit import count_calls

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]


def _log(count: int) -> str:
    """Successes, conflicts after them, a bad line now and then and a position whose values
    only become many partway through the file (a fold learned mid-file)."""
    out = []
    for i in range(count):
        if i % 97 == 13:
            out.append(f"not an access line {i}\n")
            continue
        status, method = (409, "PUT") if i % 7 == 3 else (200, "PUT" if i % 2 else "GET")
        user = f"{NAMES[i % 10]}{i // 10}" if i > count // 2 else NAMES[i % 10]
        out.append(
            f"10.0.0.{i % 9} - - [10/Oct/2025:13:{i // 60 % 60:02d}:{i % 60:02d} +0200]"
            f' "{method} /users/{user}/orders/{i % 5} HTTP/1.1" {status} 12 "-" "curl/8"\n'
        )
    return "".join(out)


def _ingest(
    db: Path, log: Path, commit_rows: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """Ingest with 4 KB blocks; returns how many batches were committed alone (commit_batch)
    and how many transactions held pieces of several blocks (commit_rows)."""
    monkeypatch.setattr(pipeline, "COMMIT_ROWS", commit_rows)
    counts = count_calls(monkeypatch, Store, ["commit_batch", "commit_rows"])
    settings = load_settings(db=db, env={})
    settings = replace(settings, ingest=replace(settings.ingest, block_bytes=4096),
                       endpoints=replace(settings.endpoints, fold_threshold=30))  # fmt: skip
    with Store.open(db) as store:
        report = Ingester(store, settings).ingest([log])
    assert report.total("lines") == 1200
    return counts["commit_batch"], counts["commit_rows"]


TABLES = {
    "requests": "*",
    "rejects": "*",
    "conflicts": "*",
    "conflict_lines": "*",
    "files": "path, read_offset, lines, tail_start, tail_line, format, parser_state",
    "endpoint_folds": "prefix, position",
    "request_minutes": "minute, file, endpoint, method, status, sum(requests), sum(bytes)",
    "conflict_minutes": "minute, file, endpoint, method, cause, sum(conflicts)",
}


def assert_same_tables(db: Path, other: Path) -> None:
    with Store.open(db) as store:
        con = store.con
        con.execute(f"ATTACH '{other}' AS alone (READ_ONLY)")
        for table, cols in TABLES.items():
            group = " GROUP BY ALL" if "sum(" in cols else ""
            ours = f"SELECT {cols} FROM {table}{group}"
            theirs = f"SELECT {cols} FROM alone.{table}{group}"
            rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert rows and rows[0] > 0, table
            diff = con.execute(
                f"SELECT count(*) FROM (({ours} EXCEPT ALL {theirs})"
                f" UNION ALL ({theirs} EXCEPT ALL {ours}))"
            ).fetchone()
            assert diff == (0,), table


def test_blocks_committed_together_store_what_blocks_committed_alone_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "access.log"
    log.write_text(_log(1200))
    alone, together = tmp_path / "alone.duckdb", tmp_path / "together.duckdb"
    per_block, grouped = _ingest(alone, log, 0, monkeypatch)
    assert per_block >= 25 and grouped == 0
    alone_commits, merged = _ingest(together, log, 300, monkeypatch)
    assert alone_commits == 0 and 2 < merged < 10
    assert_same_tables(together, alone)
    with Store.open(together) as store:
        con = store.con
        got = con.execute(
            "SELECT count(*), string_agg(DISTINCT endpoint), (SELECT count(*) FROM rejects),"
            " (SELECT count(*) FROM endpoint_folds), (SELECT read_offset FROM files) FROM requests"
        ).fetchone()
    assert got == (1200 - 13, "/users/{id}/orders/{id}", 13, 1, log.stat().st_size)


@pytest.mark.parametrize("failing", ["add_rows", "commit_rows"])
def test_a_piece_the_open_transaction_refuses_is_committed_with_isolation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """When adding a block to the open transaction (or committing it) fails for a reason of
    the data, nothing of that transaction stays: its blocks are committed by the isolating
    path, once each."""
    log = tmp_path / "access.log"
    log.write_text(_log(1200))
    alone, together = tmp_path / "alone.duckdb", tmp_path / "together.duckdb"
    _ingest(alone, log, 0, monkeypatch)
    calls = 0
    original = getattr(Store, failing)

    def refusing(self: Store, *args: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseError("database x: Conversion Error: refused")
        original(self, *args)

    monkeypatch.setattr(Store, failing, refusing)
    isolated, _ = _ingest(together, log, 300, monkeypatch)
    assert calls > 2 and isolated == 1  # one batch went through isolation, the rest did not
    assert_same_tables(together, alone)


def test_409s_explained_while_the_file_is_read_match_those_explained_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long file's 409s are explained every CLASSIFY_EVERY_ROWS rows while it is read; here
    after every commit, against one pass at the end."""
    log = tmp_path / "access.log"
    log.write_text(_log(1200))
    at_end, during = tmp_path / "end.duckdb", tmp_path / "during.duckdb"
    _ingest(at_end, log, 300, monkeypatch)
    passes = 0
    original = Ingester.classify_pending

    def counted(self: Ingester) -> None:
        nonlocal passes
        passes += 1
        original(self)

    monkeypatch.setattr(Ingester, "classify_pending", counted)
    monkeypatch.setattr(pipeline, "CLASSIFY_EVERY_ROWS", 1)
    _, merged = _ingest(during, log, 300, monkeypatch)
    assert passes >= merged > 2  # once per commit, and once at the end
    assert_same_tables(during, at_end)
