"""Following logs: files, folders and globs, through rotation, truncation and restarts.

Each followed file is held by an open descriptor, like `tail -F`: after a rename (logrotate's
default) or a delete, what the writer added before letting go is still read from the old
descriptor, and the new file at the path is followed from its start. Reads go through the same
`Ingester` as one-shot ingest, so offsets and rows commit together and a restart (even after
kill -9) resumes exactly. watchdog events only wake the loop; a stat poll every
`poll_interval` is the safety net for missed events.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ingest.pipeline import SKIP_SUFFIXES, Ingester
from ingest.sources import FP_BYTES, GZIP_MAGIC, Source
from ingest.store import Store

log = logging.getLogger("conflictradar.watch")

# A followed file no longer at a watched path is closed after this long without growth.
DRAIN_IDLE_S = 10.0
# A last line without its newline is read anyway once the file has not grown for this long.
PARTIAL_LINE_WAIT_S = 30.0
# A compressed file is read once it has stopped growing for this long.
GZIP_SETTLE_S = 2.0

OnBatch = Callable[[int], None]  # lines ingested in this poll (0 included)


class FdReader:
    """A file-like reader over a descriptor with its own position (pread), shareable safely."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, os.fstat(self.fd).st_size - self.pos)
        data = os.pread(self.fd, n, self.pos)
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            self.pos = os.fstat(self.fd).st_size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:  # the descriptor belongs to the Followed entry
        pass

    def __enter__(self) -> FdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Followed:
    fd: int
    path: Path
    dev: int
    inode: int
    compressed: bool
    last_size: int = -1
    last_growth: float = 0.0
    present: bool = True  # still found at a watched path in the latest scan
    done: bool = False  # a compressed file is read once


def expand_watch(specs: Sequence[str]) -> list[Path]:
    """The files the specs name right now: missing paths are fine (they may appear later)."""
    out: dict[str, Path] = {}
    for spec in specs:
        if glob.has_magic(spec):
            candidates = [Path(p) for p in sorted(glob.glob(spec, recursive=True))]
        elif os.path.isdir(spec):
            candidates = []
            for root, dirs, files in os.walk(spec):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                candidates += [Path(root) / f for f in sorted(files) if not f.startswith(".")
                               and Path(f).suffix.lower() not in SKIP_SUFFIXES]  # fmt: skip
        else:
            candidates = [Path(spec)]
        for c in candidates:
            real = os.path.realpath(c)  # a symlink swapped to a new target follows the target
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.stat(real).st_mode):
                    out.setdefault(real, Path(real))
    return list(out.values())


def _source_of(f: Followed) -> Source | None:
    try:
        st = os.fstat(f.fd)
        if f.compressed:
            with gzip.GzipFile(fileobj=FdReader(f.fd)) as gz:
                head = gz.read(FP_BYTES)
        else:
            head = os.pread(f.fd, FP_BYTES, 0)
    except (OSError, EOFError) as exc:
        log.warning("cannot read file", extra={"path": str(f.path), "error": str(exc)})
        return None
    return Source(f.path, st.st_dev, st.st_ino, st.st_size, f.compressed, head)


class Tailer:
    """The follow loop of `conflictradar watch` (one per process; owns the store's writes)."""

    def __init__(self, store: Store, ingester: Ingester, specs: Sequence[str],
                 poll_interval_s: float, on_batch: OnBatch | None = None) -> None:  # fmt: skip
        self.store = store
        self.ingester = ingester
        self.specs = list(specs)
        self.poll_interval_s = poll_interval_s
        self.on_batch = on_batch
        self.followed: dict[tuple[int, int], Followed] = {}
        self.wake = threading.Event()
        self._observer: object | None = None

    # -- filesystem events -------------------------------------------------------------------

    def start_events(self) -> None:
        """watchdog wakes the loop on any change under the watched places (best effort)."""
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a pinned dependency
            return
        wake = self.wake

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: object) -> None:
                wake.set()

        observer = Observer()
        watched: set[str] = set()
        for spec in self.specs:
            base = spec
            while glob.has_magic(base):
                base = os.path.dirname(base) or "."
            folder = base if os.path.isdir(base) else os.path.dirname(os.path.abspath(base))
            recursive = os.path.isdir(spec) or "**" in spec
            if os.path.isdir(folder) and folder not in watched:
                watched.add(folder)
                observer.schedule(_Wake(), folder, recursive=recursive)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop_events(self) -> None:
        observer = self._observer
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join(timeout=2)  # type: ignore[attr-defined]

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.start_events()
        try:
            while not stop.is_set():
                self.poll_once()
                self.wake.wait(self.poll_interval_s)
                self.wake.clear()
        finally:
            self.stop_events()
            self.close()

    def close(self) -> None:
        for f in self.followed.values():
            with contextlib.suppress(OSError):
                os.close(f.fd)
        self.followed.clear()

    def _scan(self) -> None:
        seen: set[tuple[int, int]] = set()
        for path in expand_watch(self.specs):
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            seen.add(key)
            known = self.followed.get(key)
            if known is not None:
                if known.path != path:
                    log.info("file renamed", extra={"from": str(known.path), "to": str(path)})
                    known.path = path
                known.present = True
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                log.warning("cannot open file", extra={"path": str(path), "error": str(exc)})
                continue
            magic = os.pread(fd, 2, 0)
            self.followed[key] = Followed(fd, path, st.st_dev, st.st_ino, magic == GZIP_MAGIC,
                                          last_growth=time.monotonic())  # fmt: skip
            log.info("following file", extra={"path": str(path)})
        for key, f in self.followed.items():
            if key not in seen and f.present:
                f.present = False
                log.info("file moved away or deleted; draining", extra={"path": str(f.path)})

    def poll_once(self) -> int:
        """Scan, read what is new in every followed file, commit; returns lines ingested."""
        self._scan()
        now = time.monotonic()
        total = 0
        for key, f in list(self.followed.items()):
            if f.done:
                continue
            source = _source_of(f)
            if source is None:
                continue
            if source.size != f.last_size:
                f.last_size, f.last_growth = source.size, now
            idle = now - f.last_growth
            if f.compressed and idle < GZIP_SETTLE_S:
                continue  # still being written by gzip/logrotate: read it once it is complete
            opener: Callable[[], BinaryIO]
            if f.compressed:
                fd = f.fd

                def opener(fd: int = fd) -> BinaryIO:
                    return gzip.GzipFile(fileobj=FdReader(fd))  # type: ignore[return-value]
            else:
                fd = f.fd

                def opener(fd: int = fd) -> BinaryIO:
                    return FdReader(fd)  # type: ignore[return-value]

            try:
                report = self.ingester.ingest_source(
                    source, opener, take_unterminated=f.compressed or idle >= PARTIAL_LINE_WAIT_S
                )
            except Exception as exc:  # one bad file must not stop the others
                log.error("reading failed", extra={"path": str(f.path), "error": str(exc)})
                continue
            if report.lines:
                total += report.lines
                log.info("batch", extra={"path": str(f.path), "lines": report.lines,
                                         "parsed": report.parsed, "rejected": report.rejected,
                                         "conflicts": report.conflicts})  # fmt: skip
            if report.status == "unrecognized" and f.last_growth == now:
                log.warning(report.message)
            if f.compressed and report.status in ("ok", "unchanged"):
                f.done = True
            if not f.present and idle >= DRAIN_IDLE_S:
                with contextlib.suppress(OSError):
                    os.close(f.fd)
                del self.followed[key]
                log.info("closed drained file", extra={"path": str(f.path)})
        if self.on_batch is not None:
            self.on_batch(total)  # every poll, so time-based work (resolving alerts) goes on
        return total
