"""Standard input -> a spool file beside the database, read like any other log (`ingest -`, `watch -`).

A pipe can be read only once, and ingest resumes files by offset. Spooling gives the bytes a file
identity: `ingest -` copies stdin and ingests the copy; `watch -` copies it as it arrives into a
file of the spool folder, which watch follows like a log folder, and stops once stdin has ended
and every spooled byte is stored. A spool file left by a killed `watch -` is finished by the next
`watch -` on the same database; fully read spool files are removed when watch stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from conflictradar.ingest.errors import InputError

log = logging.getLogger("conflictradar.spool")

CHUNK = 1 << 16
STDIN = "-"


# After stdin ends, give up waiting for the spool to be stored once nothing moved for this long
# (bytes in no known format are never stored; watch has logged why).
GIVE_UP_S = 10.0


def spool_dir(db: Path) -> Path:
    real = Path(os.path.realpath(db))  # the watcher records files by their real path
    return real.with_name(real.name + ".stdin")


def new_spool_file(db: Path) -> Path:
    folder = spool_dir(db)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the stdin spool folder {folder}: {exc.strerror}") from exc
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return folder / f"stdin-{stamp}-{os.getpid()}.log"


def copy_stream(src: BinaryIO, dest: BinaryIO, stop: threading.Event | None = None) -> int:
    """Copy until EOF (or `stop`), flushing each chunk so a follower sees it at once."""
    total = 0
    read = getattr(src, "read1", src.read)
    while stop is None or not stop.is_set():
        chunk = read(CHUNK)
        if not chunk:
            break
        dest.write(chunk)
        dest.flush()
        total += len(chunk)
    return total


def spool_stdin(db: Path, src: BinaryIO) -> Path:
    """`ingest -`: all of stdin into a new spool file; its path."""
    path = new_spool_file(db)
    with path.open("xb") as fh:
        copy_stream(src, fh)
    return path


def uses_stdin(paths: Sequence[str]) -> bool:
    return STDIN in paths


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class StdinFollower:
    """`watch -`: a thread copies stdin into a spool file; once stdin has ended and the watcher
    has stored every spooled byte, it sets watch's stop event."""

    def __init__(self, db: Path, src: BinaryIO) -> None:
        self.db = db
        self.src = src
        self.path = new_spool_file(db)
        self.path.touch(mode=0o600)
        self.folder = self.path.parent
        self._ended = threading.Event()
        self._stop: threading.Event | None = None
        self._ingester: object | None = None
        self._moved = time.monotonic()
        self._thread = threading.Thread(target=self._copy, name="conflictradar-stdin", daemon=True)

    def _copy(self) -> None:
        try:
            with self.path.open("ab") as fh:
                n = copy_stream(self.src, fh)
                fh.seek(0, os.SEEK_END)
                if fh.tell() and not _ends_with_newline(self.path):
                    fh.write(b"\n")  # stdin has ended: its last line is complete
            log.info("standard input ended", extra={"bytes": n, "spool": str(self.path)})
        except OSError as exc:
            log.error("cannot spool standard input", extra={"error": str(exc)})
        finally:
            self._ended.set()

    # -- the watch extension protocol ---------------------------------------------------------

    def start(self, store: object, ingester: object, stop: threading.Event) -> None:
        self._stop = stop
        self._ingester = ingester
        self._thread.start()

    def on_batch(self, lines: int) -> None:
        if lines or not self._ended.is_set():
            self._moved = time.monotonic()
            return
        if self._stop is None:
            return
        if self._caught_up():
            self._stop.set()
        elif time.monotonic() - self._moved > GIVE_UP_S:
            log.warning(
                "standard input ended but not all of it could be stored; stopping",
                extra={"spool": str(self.folder)},
            )
            self._stop.set()

    def close(self) -> None:
        for spooled in self.folder.glob("stdin-*.log"):
            if self._read_fully(spooled):
                with contextlib.suppress(OSError):
                    spooled.unlink()

    # -----------------------------------------------------------------------------------------

    def _read_fully(self, path: Path) -> bool:
        records = getattr(self._ingester, "records", [])
        try:
            size = path.stat().st_size
        except OSError:
            return False
        if size == 0:
            return True
        return any(
            r.path == str(path) and r.read_offset >= size and r.tail_start is None for r in records
        )

    def _caught_up(self) -> bool:
        return all(self._read_fully(p) for p in self.folder.glob("stdin-*.log"))
