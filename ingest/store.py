"""The DuckDB file's single writer: creating it, batch commits, and the stores it owns (tables
and opening: ingest.database; what a batch's rows are and how they are inserted: ingest.rows).

Rows of a batch, its rejects and the file's new offset commit in one transaction, so a crash at
any moment leaves the database at a batch boundary: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from conflictradar.ingest import rows
from conflictradar.ingest.causes import CAUSES
from conflictradar.ingest.database import (
    DDL,
    SCHEMA_VERSION,
    WRITER_SANDBOX,
    connect,
    translate,
)
from conflictradar.ingest.endpoints import Fold
from conflictradar.ingest.errors import DatabaseError
from conflictradar.ingest.rows import AfterInsert, Batch, FileRecord
from conflictradar.ingest.timestamps import time_spans

# A file record's fields in the `files` table's order (before first_seen and updated).
FILE_SCHEMA = {
    "file_id": pl.Int64, "path": pl.String, "dev": pl.UInt64, "inode": pl.UInt64,
    "fp_len": pl.Int32, "fp_hash": pl.String, "read_offset": pl.Int64, "lines": pl.Int64,
    "tail_start": pl.Int64, "tail_line": pl.Int64, "format": pl.String, "envelope": pl.String,
    "parser_state": pl.String, "compressed": pl.Boolean,
}  # fmt: skip


def _create(path: Path) -> int | None:
    """A new database appears at `path` complete with its schema, or not at all: it is built
    under a temporary name and linked into place (never over a file another process created
    meanwhile), so no reader ever opens a file without tables. The inode this call put there,
    or None if it put nothing there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.creating")
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            Store(con, path)._migrate()
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.chmod(tmp, 0o600)  # request logs carry clients, paths and messages: owner only
        try:
            os.link(tmp, path)  # fails if another process created it meanwhile
        except FileExistsError:
            return None
        except OSError:  # a filesystem without hard links: check, then rename
            if path.exists():
                return None
            os.replace(tmp, path)
        return os.stat(path).st_ino
    except duckdb.Error as exc:
        raise translate(exc, path) from exc
    except OSError as exc:
        raise DatabaseError(f"cannot create database {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)


def _same_inode(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


class _Trial(Exception):
    """Raised inside a trial commit to roll it back."""


class Store:
    """A read-write connection to the database: the single writer."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, path: Path, spill: Path | None = None
    ) -> None:
        self.con = con
        self.path = path
        self._spill = spill
        self._threads = self._current_threads()  # as opened: what `threads(None)` means
        self._threads_now = self._threads  # as set by `threads()` (no query per batch)

    @classmethod
    def open(cls, path: Path, *, wait_s: float = 0.0, sandboxed: bool = False,
             memory_limit: str | None = None, threads: int | None = None) -> Store:  # fmt: skip
        """Open for writing. `sandboxed` also closes DuckDB's doors to files, network and
        extensions (the watcher, which answers other processes' queries, runs that way); its
        spill directory is a fresh private one, since a sandboxed connection may still read
        there (the default `<db>.tmp/` is wherever a symlink planted beside the file leads)."""
        if path.exists() and path.is_dir():
            raise DatabaseError(f"--db {path} is a directory; give a file path")
        # DuckDB creates the WAL (and spill files) later, with the process umask: from here on
        # this process creates files for its owner only (request logs name clients and paths).
        os.umask(os.umask(0o077) | 0o077)
        if not path.parent.exists():
            raise DatabaseError(
                f"cannot create database {path}: folder {path.parent} does not exist"
            )
        created = _create(path) if not path.exists() else None
        # Row order on disk carries no meaning here (every read orders explicitly); letting
        # DuckDB write batches in any order makes ingest ~30% cheaper (measured: bench).
        # A bulk insert compresses each row group as it fills, not five at a time: one-shot
        # ingest's commits then cost little, and the writer's work overlaps the parsing.
        config: dict[str, Any] = {
            "preserve_insertion_order": False,
            "write_buffer_row_group_count": 1,
        }
        spill = None
        if sandboxed:
            spill = Path(tempfile.mkdtemp(prefix="conflictradar-spill-"))
            config |= {**WRITER_SANDBOX, "temp_directory": str(spill)}
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if threads is not None:
            config["threads"] = threads
        try:
            con = connect(path, read_only=False, wait_s=wait_s, config=config)
        except BaseException:
            if spill is not None:
                shutil.rmtree(spill, ignore_errors=True)
            raise
        store = cls(con, path, spill)
        # A database this call has just created holds the current schema and causes already,
        # unless the file was replaced or removed before the connection opened it.
        if created is None or not _same_inode(path, created):
            store._migrate()
        return store

    def _migrate(self) -> None:
        """Create what is missing and refresh the causes, in one transaction."""
        try:
            self.con.execute("BEGIN TRANSACTION")
            self.con.execute(DDL)
            # Databases made before conflicts counted requests (re-explained on next ingest).
            self.con.execute(
                "ALTER TABLE conflicts ADD COLUMN IF NOT EXISTS confidence VARCHAR;"
                " ALTER TABLE conflicts ADD COLUMN IF NOT EXISTS lines VARCHAR[]"
            )
            self.con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [str(SCHEMA_VERSION)],
            )
            self.con.executemany(
                "INSERT INTO causes VALUES (?, ?, ?, ?) ON CONFLICT (cause) DO UPDATE SET"
                " title = excluded.title, description = excluded.description,"
                " remediation = excluded.remediation",
                [[c.cause.value, c.title, c.description, c.remediation] for c in CAUSES],
            )
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            raise translate(exc, self.path) from exc

    def close(self) -> None:
        self.con.close()
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def threads(self, n: int | None) -> Iterator[None]:
        """Let DuckDB use `n` threads (None: as many as when opened) inside the block.

        Bulk inserts are cheapest on one thread (measured on 2M rows: 0.9 against 1.4 us a row
        on two, and half the file size), which also leaves the other core to the parser.
        """
        before = self._threads_now
        wanted = int(n or self._threads)
        if wanted == before:  # nothing to change (and a locked configuration refuses any SET)
            yield
            return
        self.con.execute(f"SET threads = {wanted}")
        self._threads_now = wanted
        try:
            yield
        finally:  # back to what the enclosing block had
            self.con.execute(f"SET threads = {before}")
            self._threads_now = before

    def _current_threads(self) -> int:
        row = self.con.execute("SELECT current_setting('threads')").fetchone()
        return int(row[0]) if row else 1

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def prune(self, before: datetime) -> int:
        """Delete rows older than `before`, cut at the start of its minute so the per-minute
        rollups keep matching the rows (retention); returns how many requests were deleted.

        Rejects carry no time; a file's rejects go with it up to the last line pruned from it
        (lines of a file are in time order), so a line that never parsed is not kept forever.
        """
        with self.transaction() as con:
            cut = {"cut": before}
            minute = "date_trunc('minute', $cut::TIMESTAMPTZ)"
            row = con.execute(f"SELECT count(*) FROM requests WHERE ts < {minute}", cut).fetchone()
            con.execute(
                "DELETE FROM rejects r USING (SELECT file, max(line) AS last FROM requests"
                f" WHERE ts < {minute} GROUP BY file) p WHERE r.file = p.file AND r.line < p.last",
                cut,
            )
            for table in ("requests", "conflicts", "conflict_lines", "request_links"):
                con.execute(f"DELETE FROM {table} WHERE ts < {minute}", cut)
            for table in ("request_minutes", "conflict_minutes"):
                con.execute(f"DELETE FROM {table} WHERE minute < {minute}", cut)
        return int(row[0]) if row else 0

    # -- endpoint folds ----------------------------------------------------------------------

    def endpoint_folds(self) -> tuple[Fold, ...]:
        rows = self.con.execute("SELECT prefix, position FROM endpoint_folds").fetchall()
        return tuple(Fold(prefix, position) for prefix, position in rows)

    def stored_endpoints(self) -> list[str]:
        """Every distinct endpoint stored, from the per-minute rollup (which holds each one in
        far fewer rows than `requests`: no scan of the raw rows every maintenance minute)."""
        rows = self.con.execute(
            "SELECT DISTINCT endpoint FROM request_minutes WHERE endpoint IS NOT NULL"
        ).fetchall()
        return [r[0] for r in rows]

    def record_folds(self, folds: Sequence[Fold]) -> None:
        """Store new folds and re-template the endpoints already stored, in one transaction."""
        with self.transaction() as con:
            for fold in folds:
                con.execute(
                    "INSERT INTO endpoint_folds VALUES (?, ?, now())", [fold.prefix, fold.position]
                )
                replacement = fold.prefix.replace("\\", "\\\\") + "/{id}\\1"
                for table in ("requests", "conflicts", "request_minutes", "conflict_minutes"):
                    con.execute(
                        f"UPDATE {table} SET endpoint = regexp_replace(endpoint, ?, ?)"
                        " WHERE starts_with(endpoint, ?)",
                        [fold.pattern, replacement, fold.prefix + "/"],
                    )

    # -- files -----------------------------------------------------------------------------

    def file_records(self) -> list[FileRecord]:
        rows = self.con.execute(
            "SELECT file_id, path, dev, inode, fp_len, fp_hash, read_offset, lines, tail_start,"
            " tail_line, format, envelope, parser_state, compressed FROM files ORDER BY file_id"
        ).fetchall()
        return [FileRecord(*row) for row in rows]

    def next_file_id(self) -> int:
        row = self.con.execute("SELECT coalesce(max(file_id), 0) + 1 FROM files").fetchone()
        return int(row[0]) if row else 1

    def _upsert_file(self, rec: FileRecord) -> None:
        """Store a file's record: an UPDATE for a file already stored (every batch but a file's
        first; the INSERT ... ON CONFLICT form cost ~7 ms a batch against ~1-2 ms), else an
        INSERT."""
        values = [
            rec.path, rec.dev, rec.inode, rec.fp_len, rec.fp_hash, rec.read_offset, rec.lines,
            rec.tail_start, rec.tail_line, rec.format, rec.envelope, rec.parser_state,
            rec.compressed,
        ]  # fmt: skip
        row = self.con.execute(
            "UPDATE files SET path = ?, dev = ?, inode = ?, fp_len = ?, fp_hash = ?,"
            " read_offset = ?, lines = ?, tail_start = ?, tail_line = ?, format = ?,"
            " envelope = ?, parser_state = ?, compressed = ?, updated = now() WHERE file_id = ?",
            [*values, rec.file_id],
        ).fetchone()
        if row and row[0]:
            return
        self.con.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())"
            " ON CONFLICT (file_id) DO UPDATE SET path = excluded.path, dev = excluded.dev,"
            " inode = excluded.inode, fp_len = excluded.fp_len, fp_hash = excluded.fp_hash,"
            " read_offset = excluded.read_offset, lines = excluded.lines,"
            " tail_start = excluded.tail_start, tail_line = excluded.tail_line,"
            " format = excluded.format, envelope = excluded.envelope,"
            " parser_state = excluded.parser_state, compressed = excluded.compressed,"
            " updated = now()",
            [rec.file_id, *values],
        )

    def _upsert_files(self, recs: Sequence[FileRecord]) -> None:
        """`_upsert_file` for several files in two statements (a file's last record wins)."""
        latest = list({rec.file_id: rec for rec in recs}.values())
        if len(latest) == 1:
            self._upsert_file(latest[0])
            return
        frame = pl.DataFrame({name: [getattr(rec, name) for rec in latest] for name in FILE_SCHEMA},
                             schema=FILE_SCHEMA)  # fmt: skip
        fields = [name for name in FILE_SCHEMA if name != "file_id"]
        self.con.register("_files", frame.to_arrow())
        try:
            self.con.execute(
                f"UPDATE files SET {', '.join(f'{c} = r.{c}' for c in fields)}, updated = now()"
                " FROM _files r WHERE files.file_id = r.file_id"
            )
            self.con.execute(
                "INSERT INTO files SELECT r.*, now(), now() FROM _files r"
                " ANTI JOIN files f ON f.file_id = r.file_id"
            )
        finally:
            self.con.unregister("_files")

    # -- batches ---------------------------------------------------------------------------

    def commit_batch(
        self, batch: Batch, after: AfterInsert | None = None, rollback: bool = False
    ) -> None:
        """Rows, rejects and the file's offset in one transaction.

        `after(con, lo, hi)` runs inside the same transaction with the batch's time range (the
        classifier), so derived tables never lag the rows they are derived from. `rollback` does
        all of it and then rolls back: a trial that raises what the commit would raise
        (ingest.isolation bisects a failing batch with it).
        """
        try:
            with self.transaction():
                rows.drop_line(self.con, batch.drop_line)
                rows.add_rows(self.con, batch)
                self._close_rows([batch.file], batch.requests["ts"], after)
                if rollback:
                    raise _Trial
        except _Trial:
            pass
        except duckdb.Error as exc:
            raise translate(exc, self.path) from exc

    def commit_batches(self, batches: Sequence[Batch], after: AfterInsert | None) -> None:
        """Several files' batches in one transaction (a watcher's look over files that each
        grew a little, ingest.holding): their rows with one insert per table, each file's
        record (a file's later batch last), and `after` over the times of all their rows."""
        try:
            with self.transaction():
                for batch in batches:
                    rows.drop_line(self.con, batch.drop_line)
                rows.add_batches(self.con, batches)
                ts = pl.concat([b.requests["ts"] for b in batches if b.requests.height]
                               or [batches[0].requests["ts"]])  # fmt: skip
                self._close_rows([batch.file for batch in batches], ts, after)
        except duckdb.Error as exc:
            raise translate(exc, self.path) from exc

    # One batch's rows in pieces (one-shot ingest adds each parsed block as it comes, and
    # commits a few together): begin_rows, add_rows per piece, then commit_rows or
    # rollback_rows. What commits is what commit_batch of all the pieces would commit.

    def begin_rows(self, drop_line: tuple[str, int] | None) -> None:
        try:
            self.con.execute("BEGIN TRANSACTION")
            rows.drop_line(self.con, drop_line)
        except duckdb.Error as exc:
            self.rollback_rows()
            raise translate(exc, self.path) from exc

    def add_rows(self, batch: Batch) -> None:
        """`batch`'s rows, rejects, 409 lines and rollup (not its file record or drop_line)."""
        try:
            rows.add_rows(self.con, batch)
        except duckdb.Error as exc:
            raise translate(exc, self.path) from exc

    def commit_rows(self, file: FileRecord, ts: pl.Series, after: AfterInsert | None) -> None:
        """The file's record and `after` over the times `ts` of every row added, then commit."""
        try:
            self._close_rows([file], ts, after)
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            raise translate(exc, self.path) from exc

    def rollback_rows(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.execute("ROLLBACK")

    def _close_rows(
        self, files: Sequence[FileRecord], ts: pl.Series, after: AfterInsert | None
    ) -> None:
        self._upsert_files(files)
        if after is not None and ts.len():
            # Once per run of nearby times: a stray old or future line must not widen
            # the range re-explained to everything stored in between.
            for lo, hi in time_spans(ts):
                after(self.con, lo, hi)
