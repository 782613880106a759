"""Following files: every rotation style, partial lines, new files, restarts, served reads."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.served_reader import connect_served
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from conflictradar.ingest.tail import Tailer
from tests.watcher import wait_for

LINE = '10.0.0.{c} - - [02/Jun/2025:10:00:{s:02d} +0000] "PUT /orders/{n}?seq={n} HTTP/1.1" {st} 5 "-" "c"\n'


def write(path: Path, start: int, count: int, mode: str = "a") -> None:
    with path.open(mode) as fh:
        for n in range(start, start + count):
            fh.write(LINE.format(c=n % 200, s=n % 60, n=n, st=409 if n % 7 == 0 else 200))


class Harness:
    """A Tailer driven by hand (poll_once), over a real database file."""

    def __init__(self, tmp: Path, *specs: str) -> None:
        self.db = tmp / "watch.duckdb"
        self.settings = load_settings(db=self.db, env={})
        self.specs = specs
        self.store = Store.open(self.db)
        self.tailer = Tailer(
            self.store, Ingester(self.store, self.settings, classify_later=True), specs, 0.1
        )

    def poll(self) -> int:
        return self.tailer.poll_once()

    def seqs(self) -> list[int]:
        rows = self.store.con.execute(
            "SELECT CAST(substr(query, 5) AS INTEGER) FROM requests ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def restart(self) -> None:
        self.close()
        self.store = Store.open(self.db)
        self.tailer = Tailer(
            self.store, Ingester(self.store, self.settings, classify_later=True), self.specs, 0.1
        )

    def close(self) -> None:
        self.tailer.close()
        self.store.close()


def test_rename_and_create_reads_the_old_tail(tmp_path: Path, logs: Path) -> None:
    h = Harness(tmp_path, str(logs / "access.log"))  # only the live name is watched
    log = logs / "access.log"
    write(log, 0, 100)
    h.poll()
    write(log, 100, 20)  # written just before rotation, not yet read
    os.rename(log, logs / "access.log.1")
    write(logs / "access.log.1", 120, 5)  # the writer still had the old file open
    write(log, 125, 30)
    h.poll()
    h.poll()
    assert h.seqs() == list(range(155))
    h.close()


def test_copytruncate(tmp_path: Path, logs: Path) -> None:
    h = Harness(tmp_path, str(logs))
    log = logs / "access.log"
    write(log, 0, 50)
    h.poll()
    write(log, 50, 10)
    shutil.copyfile(log, logs / "access.log.1")
    with log.open("r+") as fh:
        fh.truncate(0)
    write(log, 60, 5)
    h.poll()
    assert h.seqs() == list(range(65))
    h.close()


def test_delete_after_rotation_and_compress_later(tmp_path: Path, logs: Path) -> None:
    h = Harness(tmp_path, str(logs))
    log = logs / "access.log"
    write(log, 0, 300)
    h.poll()
    os.rename(log, logs / "access.log.1")
    write(log, 300, 10)
    h.poll()
    with (
        (logs / "access.log.1").open("rb") as src,
        gzip.open(logs / "access.log.1.gz", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    (logs / "access.log.1").unlink()
    time.sleep(2.1)  # compressed files are read once they have settled
    h.poll()
    h.restart()  # and a restart sees the .gz again: still nothing twice
    time.sleep(2.1)
    h.poll()
    assert h.seqs() == list(range(310))
    h.close()


def test_symlink_swapped_to_new_target(tmp_path: Path, logs: Path) -> None:
    h = Harness(tmp_path, str(logs / "current.log"))
    a, b = logs / "day1.log", logs / "day2.log"
    write(a, 0, 10)
    os.symlink(a, logs / "current.log")
    h.poll()
    write(b, 10, 10)
    tmp_link = logs / "current.tmp"
    os.symlink(b, tmp_link)
    os.replace(tmp_link, logs / "current.log")
    h.poll()
    assert h.seqs() == list(range(20))
    h.close()


def test_partial_last_line_waits_for_its_newline(tmp_path: Path, logs: Path) -> None:
    h = Harness(tmp_path, str(logs))
    log = logs / "access.log"
    write(log, 0, 3)
    text = LINE.format(c=1, s=1, n=3, st=200)
    with log.open("a") as fh:
        fh.write(text[:30])
    h.poll()
    assert h.seqs() == [0, 1, 2]
    with log.open("a") as fh:
        fh.write(text[30:])
    h.poll()
    assert h.seqs() == [0, 1, 2, 3]
    assert h.store.con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    h.close()


def test_new_files_in_a_folder_and_restart_resumes(tmp_path: Path, logs: Path) -> None:
    h = Harness(tmp_path, str(logs))
    write(logs / "a.log", 0, 10)
    h.poll()
    write(logs / "b.log", 10, 10)
    h.poll()
    h.restart()
    write(logs / "a.log", 20, 5)
    h.poll()
    assert h.seqs() == list(range(25))
    h.close()


def _start_watch(db: Path, *paths: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", *map(str, paths), "--db", str(db),
         "--no-alerts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_watch_serves_reads_refuses_a_second_watch_and_stops_cleanly(tmp_path: Path,
                                                                    logs: Path) -> None:  # fmt: skip
    db = tmp_path / "w.duckdb"
    write(logs / "access.log", 0, 50)
    proc = _start_watch(db, logs)
    try:
        settings = load_settings(db=db, env={})
        wait_for(lambda: connect_served(db, settings.sql, wait_s=0) is not None, timeout=30.0)

        def rows() -> int:
            return int(open_reader(settings).query("SELECT count(*) FROM requests")[0][0].as_py())

        wait_for(lambda: rows() == 50, timeout=30.0)
        write(logs / "access.log", 50, 25)
        wait_for(lambda: rows() == 75, timeout=30.0)
        second = subprocess.run(
            [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        assert "already watched by process" in second.stderr
        assert "Traceback" not in second.stderr
        sql = subprocess.run(
            [sys.executable, "-m", "conflictradar", "sql", "SELECT count(*) AS n FROM conflicts",
             "--db", str(db)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sql.returncode == 0, sql.stderr
        assert sql.stdout == "n\n11\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not (tmp_path / "w.duckdb.serve.json").exists()
