"""The dashboard's data status (the version its cached reads are keyed by) is read again only
when the database file or its WAL changes: a page view of unchanged data does not open the file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from conflictradar.dashboard import data
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from tests.test_dashboard_data import FILES, NEWEST, _row, build_db, commit


@contextmanager
def held(db: Path) -> Iterator[None]:
    """The file opened read-write by another process, as `watch` or `ingest` would."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
         " print('held', flush=True); time.sleep(120)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_unchanged_file_is_not_read_again_and_a_commit_is_seen(tmp_path: Path) -> None:
    db = build_db(tmp_path / "status.duckdb")
    s = Settings(db=db)
    first = data.status(s)
    assert first.requests > 0
    with held(db):  # reading the file now would wait for the lock and fail
        assert data.status(s) == first
    late = NEWEST + timedelta(seconds=30)
    rows = [_row(late, FILES[0], "10.9.9.9", "PUT", f"/orders/{i}", "/orders/{id}", 409)
            for i in range(3)]  # fmt: skip
    with Store.open(db) as store:
        commit(store, rows, s)
    after = data.status(s)
    assert after.requests == first.requests + 3 and after.conflicts == first.conflicts + 3
    assert after.version != first.version


def test_no_file_no_memory(tmp_path: Path) -> None:
    db = tmp_path / "later.duckdb"
    s = Settings(db=db)
    assert data.fingerprint(db) is None
    assert data.status(s).requests == 0 and not data.status(s).has_schema
    build_db(db)
    assert data.status(s).requests > 0  # the file that appeared is read at once
