"""One-shot ingest commits several parsed blocks at once: the database it leaves is the one that
committing block by block leaves (rows, line numbers, rejects, causes, rollups, offsets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conflictradar.ingest import pipeline
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store

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


def _ingest(db: Path, log: Path, commit_rows: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Ingest with 4 KB blocks; returns how many transactions stored rows."""
    monkeypatch.setattr(pipeline, "COMMIT_ROWS", commit_rows)
    commits = 0
    original = Store.commit_batch

    def counted(self: Store, *args: object, **kwargs: object) -> None:
        nonlocal commits
        commits += 1
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "commit_batch", counted)
    settings = load_settings(db=db, env={})
    settings = replace(settings, ingest=replace(settings.ingest, block_bytes=4096),
                       endpoints=replace(settings.endpoints, fold_threshold=30))  # fmt: skip
    with Store.open(db) as store:
        report = Ingester(store, settings).ingest([log])
    assert report.total("lines") == 1200
    return commits


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


def test_blocks_committed_together_store_what_blocks_committed_alone_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "access.log"
    log.write_text(_log(1200))
    alone, together = tmp_path / "alone.duckdb", tmp_path / "together.duckdb"
    per_block = _ingest(alone, log, 0, monkeypatch)
    merged = _ingest(together, log, 300, monkeypatch)
    assert per_block >= 25 and merged < per_block / 3
    with Store.open(together) as store:
        con = store.con
        con.execute(f"ATTACH '{alone}' AS alone (READ_ONLY)")
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
        got = con.execute(
            "SELECT count(*), string_agg(DISTINCT endpoint), (SELECT count(*) FROM rejects),"
            " (SELECT count(*) FROM endpoint_folds), (SELECT read_offset FROM files) FROM requests"
        ).fetchone()
    assert got == (1200 - 13, "/users/{id}/orders/{id}", 13, 1, log.stat().st_size)
