"""A look over several files that each grew a little commits their batches in one transaction
(ingest.holding), and stores exactly what committing each file alone stores: through a refused
shared commit (each batch alone, with isolation), a failure of the machine (nothing stored, every
file read again) and a file whose batch fails even alone (only that file waits)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conflictradar.ingest.errors import DatabaseError, DatabaseLockedError
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.rows import Batch, FileRecord
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.kit import count_calls
from tests.test_watch import Harness, write

FILES = 5
# Every table a look writes, compared between the watcher's database and a one-shot ingest.
TABLES = {
    "requests": "*",
    "rejects": "*",
    "conflicts": "* EXCLUDE (evidence)",
    "conflict_lines": "*",
    "files": "path, read_offset, lines, tail_start, tail_line, format",
    "request_minutes": "minute, file, endpoint, method, status, sum(requests), sum(bytes)",
    "conflict_minutes": "minute, file, endpoint, method, cause, sum(conflicts)",
}


def _started(tmp_path: Path, logs: Path) -> Harness:
    """A hand-driven watcher that has read the first 30 lines of each of FILES files."""
    for i in range(FILES):
        write(logs / f"site{i}.log", i * 10_000, 30)
    h = Harness(tmp_path, str(logs))
    assert h.poll() == 30 * FILES  # files never read are each read alone
    return h


def _grow(logs: Path) -> int:
    """A few lines more in every file, an unparseable one among them; returns how many."""
    for i in range(FILES):
        write(logs / f"site{i}.log", i * 10_000 + 30, 12)
    with (logs / "site2.log").open("a") as fh:
        fh.write("\x00 not a log line\n")
    return 12 * FILES + 1


def assert_same_as_one_shot(h: Harness, logs: Path, tmp_path: Path,
                            tables: dict[str, str] = TABLES) -> None:  # fmt: skip
    """`tables` of the watcher's database hold what one ingest of the same files stores."""
    other = tmp_path / "one-shot.duckdb"
    with Store.open(other) as store:
        Ingester(store, load_settings(db=other, env={})).ingest(sorted(logs.iterdir()))
    con = h.store.con
    con.execute(f"ATTACH '{other}' AS once (READ_ONLY)")
    try:
        for table, cols in tables.items():
            group = " GROUP BY ALL" if "sum(" in cols else ""
            ours, theirs = (f"SELECT {cols} FROM {t}{group}" for t in (table, f"once.{table}"))
            diff = con.execute(f"SELECT count(*) FROM (({ours} EXCEPT ALL {theirs})"
                               f" UNION ALL ({theirs} EXCEPT ALL {ours}))").fetchone()  # fmt: skip
            assert diff == (0,), table
    finally:
        con.execute("DETACH once")


def _assert_as_one_shot(h: Harness, logs: Path, tmp_path: Path) -> None:
    """The watcher stored what one ingest of the same files stores (each line once)."""
    assert_same_as_one_shot(h, logs, tmp_path)
    counted = h.store.con.execute(
        "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM rejects),"
        " (SELECT count(*) FROM conflicts)"
    ).fetchone()
    assert counted is not None and counted[0] == 42 * FILES and counted[1] == 1
    assert counted[2] > 0


def test_a_look_over_several_files_commits_their_appends_in_one_transaction(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _started(tmp_path, logs)
    calls = count_calls(monkeypatch, Store, ["commit_batch", "commit_batches"])
    grown = _grow(logs)
    assert h.poll() == grown
    assert calls == {"commit_batch": 0, "commit_batches": 1}
    assert h.tailer.last_files == FILES
    assert h.poll() == 0
    _assert_as_one_shot(h, logs, tmp_path)
    h.close()


def test_a_shared_commit_refused_for_the_data_commits_each_batch_alone(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _started(tmp_path, logs)
    calls = count_calls(monkeypatch, Store, ["commit_batch", "commit_batches"])

    def refused(self: Store, batches: list[Batch], after: object) -> None:
        calls["commit_batches"] += 1
        raise DatabaseError("database x: Conversion Error: refused")

    monkeypatch.setattr(Store, "commit_batches", refused)
    grown = _grow(logs)
    assert h.poll() == grown
    assert calls == {"commit_batch": FILES, "commit_batches": 1}
    assert h.poll() == 0
    _assert_as_one_shot(h, logs, tmp_path)
    h.close()


def test_a_machine_failure_of_the_shared_commit_stores_nothing_and_loses_nothing(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _started(tmp_path, logs)
    original = Store.commit_batches
    failures = iter([True])

    def locked_once(self: Store, batches: list[Batch], after: object) -> None:
        if next(failures, False):
            raise DatabaseLockedError("database x is locked by another process")
        original(self, batches, after)

    monkeypatch.setattr(Store, "commit_batches", locked_once)
    grown = _grow(logs)
    assert h.poll() == 0  # nothing stored, no file's offset moved
    assert h.store.con.execute("SELECT count(*) FROM requests").fetchone() == (30 * FILES,)
    assert all(f.failures == 1 and f.retry_at > time.monotonic()
               for f in h.tailer.followed.values())  # fmt: skip
    assert h.poll() == 0  # each file waits out its back-off
    time.sleep(1.05)
    assert h.poll() == grown
    _assert_as_one_shot(h, logs, tmp_path)
    h.close()


def test_a_batch_that_fails_alone_too_holds_back_only_its_file(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _started(tmp_path, logs)
    shared, alone = Store.commit_batches, Store.commit_batch
    refusals = {"shared": 1, "site3": 1}

    def refused(self: Store, batches: list[Batch], after: object) -> None:
        if refusals["shared"]:
            refusals["shared"] -= 1
            raise DatabaseError("database x: Conversion Error: refused")
        shared(self, batches, after)

    def site3_out_of_disk(self: Store, batch: Batch, *args: object) -> None:
        if batch.file.path.endswith("site3.log") and refusals["site3"]:
            refusals["site3"] -= 1
            raise OSError(28, "No space left on device")
        alone(self, batch, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "commit_batches", refused)
    monkeypatch.setattr(Store, "commit_batch", site3_out_of_disk)
    grown = _grow(logs)
    assert h.poll() == grown - 12  # every file but site3
    waiting = [f for f in h.tailer.followed.values() if f.failures]
    assert [f.path.name for f in waiting] == ["site3.log"]
    time.sleep(1.05)
    assert h.poll() == 12  # site3 alone in its look: its own commit
    _assert_as_one_shot(h, logs, tmp_path)
    h.close()


def test_file_records_of_a_look_store_what_one_upsert_each_stores(tmp_path: Path) -> None:
    """The look's file records in two statements (new and known files, a file's later record
    winning) leave `files` as one upsert per record in turn does."""

    def rec(file_id: int, offset: int, path: str = "") -> FileRecord:
        return FileRecord(file_id, path or f"/logs/{file_id}.log", 2049, 100 + file_id, 64,
                          "f" * 64, offset, offset // 10, None, None, "combined", None,
                          '{"format_spec": "combined"}', False)  # fmt: skip

    looks = [[rec(1, 10), rec(2, 20)], [rec(2, 25), rec(3, 30), rec(2, 40, "/logs/moved.log")]]
    stored = []
    for together in (True, False):
        with Store.open(tmp_path / f"{together}.duckdb") as store:
            for look in looks:
                with store.transaction():
                    if together:
                        store._upsert_files(look)
                    else:
                        for r in look:
                            store._upsert_file(r)
            stored.append(store.con.execute(
                "SELECT * EXCLUDE (first_seen, updated), first_seen <= updated FROM files"
                " ORDER BY file_id").fetchall())  # fmt: skip
    assert stored[0] == stored[1]
    assert [(r[0], r[1], r[6]) for r in stored[0]] == [
        (1, "/logs/1.log", 10), (2, "/logs/moved.log", 40), (3, "/logs/3.log", 30)
    ]  # fmt: skip
