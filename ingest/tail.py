"""Following logs: files, folders and globs, through rotation, truncation and restarts.

Each followed file is held by an open descriptor, like `tail -F`: after a rename (logrotate's
default) or a delete, what the writer added before letting go is still read from the old
descriptor, and the new file at the path is followed from its start. Reads go through the same
`Ingester` as one-shot ingest, so offsets and rows commit together and a restart (even after
kill -9) resumes exactly. The files are looked at every LOOK_EVERY_S (an fstat each; only
the ones that grew are read, and small appends may wait for a batch: BATCH_BYTES); watchdog
events about new, moved or deleted files trigger a rescan of the watched places, and a rescan
every `poll_interval` is the safety net.
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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from conflictradar.ingest.pipeline import SKIP_SUFFIXES, Ingester
from conflictradar.ingest.sources import FP_BYTES, GZIP_MAGIC, Source
from conflictradar.ingest.store import Store

log = logging.getLogger("conflictradar.watch")

# A followed file no longer at a watched path is closed after this long without growth.
DRAIN_IDLE_S = 10.0
# A last line without its newline is read anyway once the file has not grown for this long.
PARTIAL_LINE_WAIT_S = 30.0
# A compressed file is read once it has stopped growing for this long.
GZIP_SETTLE_S = 2.0
# The longest wait before reading a file again after reading it failed.
RETRY_MAX_S = 60.0

# How often the followed files are looked at (see Tailer.run): the pace of batches, and so of
# commits and classification passes, whatever the rate of writes. It bounds append -> visible
# at about this plus one batch's work (target: p95 <= 1 s).
LOOK_EVERY_S = 0.8
# Reading a file costs a fixed toll (parse setup, a commit: ~10-30 ms) however few lines it
# brings: many files each growing by a line or two (the demo: 10 lines/s over eight files) cost
# a quarter of a core at one look every LOOK_EVERY_S. So while a look reads several files that
# bring fewer than TRICKLE_LINES lines each, looks are spaced to keep their thread's CPU under
# LOOK_BUDGET of one core, never further apart than MAX_LOOK_S (the longest a line then waits).
# One file, and busier files, keep the LOOK_EVERY_S pace: one file's toll is bounded, a busy
# file's cost is its lines, and their latency matters (a burst of 409s pages within seconds).
TRICKLE_LINES = 50
LOOK_BUDGET = 0.03
MAX_LOOK_S = 5.0
# Under `[watch] batch_wait` (the watcher's default: 5 s), a look that finds only small appends
# to files it has read before leaves them for a later look, as a log shipper batches: the toll
# of a look that reads (~60-70 ms of CPU whether it brings 80 lines or 800, measured) is paid
# once per batch_wait instead of every LOOK_EVERY_S. They are read at once, with every other
# changed file, when any of these holds: the files hold BATCH_BYTES unread; the oldest waits
# batch_wait; the unread bytes hold a burst of "409"s (at least SPIKE_MIN_409S and twice what
# the last minute's rate predicts: explained and alerted on within a look, as watch.AlertPace
# judges a surge); a file is new, shrank, moved away or ends in a line left
# unterminated; or a reader asks (`catch_up`: `sql`, scripts and alert checks served by the
# watcher see every line appended up to FRESH_S before they asked; the dashboard, which asks
# for no such read, sees each batch as it is committed).
# 1 MiB: 1,000 lines/s of access log (~200 B each) waits batch_wait; 10,000 lines/s is read at
# every look, as without batching (`python -m bench.watch_cost`: 3.2% and ~20% of a core).
BATCH_BYTES = 1024 * 1024
SPIKE_MIN_409S = 5
RATE_S = 60.0  # the usual rate of 409s is that of the last minute
FRESH_S = 0.5
CATCH_UP_S = 5.0  # the longest a reader waits for the look it asked for

OnBatch = Callable[[int], None]  # lines ingested in this poll (0 included)


def budget_pace(spent_s: float, budget: float) -> float:
    """Seconds from the start of a look that cost the process `spent_s` of CPU to the start of
    the next, so that looks keep to `budget` (`[watch] cpu_budget`, a share of one core; 0:
    none): from LOOK_EVERY_S up to MAX_LOOK_S."""
    if budget <= 0:
        return LOOK_EVERY_S
    return min(MAX_LOOK_S, max(LOOK_EVERY_S, spent_s / budget))


def look_pace(look_cpu_s: float, lines: int, files: int) -> float:
    """Seconds from the start of a look that cost `look_cpu_s` of CPU and read `lines` lines
    from `files` files to the start of the next: LOOK_EVERY_S, or for trickling files up to
    MAX_LOOK_S, so that looks stay under LOOK_BUDGET of a core."""
    if files < 2 or lines >= TRICKLE_LINES * files:
        return LOOK_EVERY_S
    return budget_pace(look_cpu_s, LOOK_BUDGET)


class FdReader:
    """A file-like reader over a descriptor with its own position (pread), shareable safely."""

    def __init__(self, fd: int, limit: int | None = None) -> None:
        self.fd = fd
        self.pos = 0
        # Read no further than this offset (the size when a look began): a look reads what was
        # there, and what the writer appends meanwhile waits for the next look, instead of
        # being chased in one tiny batch after another.
        self.limit = limit

    def _end(self) -> int:
        size = os.fstat(self.fd).st_size
        return size if self.limit is None else min(size, self.limit)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, self._end() - self.pos)
        elif self.limit is not None:
            n = max(0, min(n, self.limit - self.pos))
        data = os.pread(self.fd, n, self.pos)
        self.pos += len(data)
        return data

    def remaining(self) -> int:
        """Bytes between the position and the end (sizes each read to what was appended)."""
        return max(0, self._end() - self.pos)

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
            self.pos = self._end() + offset
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
    # (size, mtime, whether an unterminated last line is taken) when last read to its end:
    # while the file still looks like that, a look reads nothing (no work when nothing arrived).
    looked: tuple[int, int, bool] | None = None
    failures: int = 0  # reads in a row that raised (bad lines never do: ingest.isolation)
    retry_at: float = 0.0  # after a failure, not read again before this (monotonic)


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
                 poll_interval_s: float, on_batch: OnBatch | None = None,
                 cpu_budget: float = 0.0, batch_wait_s: float = 0.0) -> None:  # fmt: skip
        self.store = store
        self.ingester = ingester
        self.specs = list(specs)
        self.poll_interval_s = poll_interval_s
        self.on_batch = on_batch
        self.cpu_budget = cpu_budget  # a share of one core; 0: looks every LOOK_EVERY_S
        self.followed: dict[tuple[int, int], Followed] = {}
        self.wake = threading.Event()
        self._observer: object | None = None
        self.last_look_s = 0.0  # how long the latest look took (read, commit, classify)
        self.last_lines = 0  # lines the latest look read
        self.last_files = 0  # files it read them from
        self.last_conflicts = 0  # 409 lines among them
        self.last_cpu_s = 0.0  # CPU the latest look's reading took (its thread)
        # Small appends wait up to this long for company (BATCH_BYTES); 0: read at every look.
        self.batch_wait_s = batch_wait_s
        self.waiting_since: float | None = None  # when the oldest unread append was first seen
        self.last_full = -float("inf")  # when the latest look that left nothing unread began
        self._looks = threading.Condition()  # guards the three below
        self._started = self._done = 0  # looks begun and finished
        self._catch_up = False  # a reader asked for everything appended so far
        self._running = False  # the follow loop is running (else no look comes to wait for)
        self._kick = threading.Event()  # wakes the loop before its pace is up
        # (when, "409"s, seconds they came in) of the recent reads that counted them
        self._409_seen: deque[tuple[float, int, float]] = deque()

    # -- filesystem events -------------------------------------------------------------------

    def start_events(self) -> None:
        """watchdog flags files created, moved or deleted under the watched places (best
        effort), so the next look rescans at once. Growth is not an event: inotify would
        report every write (a writer flushing each line makes thousands a second, each handled
        in Python), while an fstat per file per look finds it for next to nothing."""
        try:
            from watchdog.events import (
                DirCreatedEvent,
                DirDeletedEvent,
                DirMovedEvent,
                FileCreatedEvent,
                FileDeletedEvent,
                FileMovedEvent,
                FileSystemEventHandler,
            )
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a pinned dependency
            return
        wake = self.wake
        structure = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent,
                     DirMovedEvent, DirDeletedEvent]  # fmt: skip

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
                observer.schedule(_Wake(), folder, recursive=recursive, event_filter=structure)
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
        """Look every LOOK_EVERY_S: an fstat per followed file, and a read only of the files
        that changed. The watched places are rescanned for new, renamed and deleted files when
        watchdog reports such a change, and every `poll_interval` as the safety net. Under a
        `cpu_budget`, looks are spaced so that what they cost the process (reading, explaining,
        alert evaluation) keeps to that share of a core; the reads it serves between looks
        (the dashboard's, `sql`'s) do not hold the logs back. Under `batch_wait_s`, a look may
        leave small appends for a later one (BATCH_BYTES); a reader's `catch_up` wakes the loop
        to read them, and stopping reads what still waits."""
        self.start_events()
        last_scan = -float("inf")

        # The loop sleeps on _kick (a reader's catch_up sets it); stopping must wake it too.
        def wake_on_stop() -> None:
            stop.wait()
            self._kick.set()

        threading.Thread(target=wake_on_stop, daemon=True, name="conflictradar-stop").start()
        self._running = True
        try:
            while not stop.is_set():
                started = time.monotonic()
                scan = self.wake.is_set() or started - last_scan >= self.poll_interval_s
                if scan:
                    self.wake.clear()
                    last_scan = started
                self._kick.clear()  # a catch_up from here on wakes the wait below
                cpu = time.process_time()
                self.poll_once(scan=scan, fresh=False)
                spent = time.process_time() - cpu
                # The writes that arrive between two looks are read by the next one, as one
                # batch: a writer flushing every few ms costs one batch per look, not one per
                # write. A look that finds a backlog reads all of it, so the pace caps the
                # number of batches, never the throughput.
                pace = look_pace(self.last_cpu_s, self.last_lines, self.last_files)
                if self.cpu_budget > 0:
                    pace = max(pace, budget_pace(spent, self.cpu_budget))
                self._kick.wait(max(0.0, pace - (time.monotonic() - started)))
            if self.waiting_since is not None:  # stopping: leave nothing read but unstored
                self.poll_once(scan=False)
        finally:
            with self._looks:
                self._running = False
                self._looks.notify_all()  # readers waiting for a look read what is stored
            self.stop_events()
            self.close()

    @property
    def last_waited(self) -> bool:
        """The latest look left appends waiting for a batch."""
        return self.waiting_since is not None

    def catch_up(self, timeout_s: float = CATCH_UP_S) -> None:
        """Called before a fresh read served by the watcher (`sql`'s, a script's, an alerts
        check; wire.Header.fresh): unless the latest look that left nothing unread began within
        FRESH_S, have the loop look now, reading everything appended (appends waiting for a
        batch included), and wait for that look (at most `timeout_s`): the reader sees every
        line appended up to FRESH_S before it asked. Readers polling faster than FRESH_S cost
        at most a look each FRESH_S."""
        with self._looks:
            if not self._running or time.monotonic() - self.last_full < FRESH_S:
                return
            want = self._started + 1  # a look begun before this call may have decided already
            self._catch_up = True
            self._kick.set()
            self._looks.wait_for(lambda: self._done >= want or not self._running, timeout_s)

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

    def _read_followed(
        self, f: Followed, now: float, idle: float, take_unterminated: bool,
        look: tuple[int, int, bool], alone: bool = False,
    ) -> tuple[int, int]:  # fmt: skip
        """Read what is new in one followed file; the lines committed, and the 409 lines among
        them. `alone`: the only file this look reads, so a small append is explained in its own
        commit's transaction."""
        if f.compressed and idle < GZIP_SETTLE_S:
            return 0, 0  # still being written by gzip/logrotate: read it once it is complete
        source = _source_of(f)
        if source is None:
            return 0, 0
        opener: Callable[[], BinaryIO]
        fd = f.fd
        if f.compressed:

            def opener(fd: int = fd) -> BinaryIO:
                return gzip.GzipFile(fileobj=FdReader(fd))  # type: ignore[return-value]
        else:

            def opener(fd: int = fd, limit: int = source.size) -> BinaryIO:
                return FdReader(fd, limit)  # type: ignore[return-value]

        try:
            small = (
                not f.compressed and f.looked is not None
                and 0 <= source.size - f.looked[0] <= self.ingester.settings.ingest.block_bytes
            )  # fmt: skip
            report = self.ingester.ingest_source(source, opener, take_unterminated,
                                                 classify_now=alone and small)  # fmt: skip
        except Exception as exc:  # one bad file must not stop the others
            # Not tied to its lines (those become rejects): the database or the disk. Back
            # off, doubling up to RETRY_MAX_S, instead of hammering the same bytes.
            f.failures += 1
            wait = min(RETRY_MAX_S, 2.0 ** (f.failures - 1))
            f.retry_at = now + wait
            log.error("reading failed", extra={"path": str(f.path), "error": str(exc),
                                               "retry_in_s": wait})  # fmt: skip
            return 0, 0
        f.failures = 0
        if report.lines:
            log.info("batch", extra={"path": str(f.path), "lines": report.lines,
                                     "parsed": report.parsed, "rejected": report.rejected,
                                     "conflicts": report.conflicts})  # fmt: skip
        if report.status == "unrecognized" and f.last_growth == now:
            log.warning(report.message)
        if f.compressed and report.status in ("ok", "unchanged"):
            f.done = True
        if report.status in ("ok", "unchanged", "unrecognized"):
            f.looked = look  # read to the end as it was: nothing to do until it changes
        return report.lines, report.conflicts

    def _batch_waits(
        self,
        looks: list[tuple[tuple[int, int], Followed, float, tuple[int, int, bool]]],
        now: float,
    ) -> bool:
        """Whether this look leaves the changed files' appends for a later one (see
        BATCH_BYTES): only when every change is a small append to a file read before."""
        unread: list[tuple[Followed, int, int]] = []  # (file, from, to)
        for _, f, _, look in looks:
            if look == f.looked:
                continue
            if f.looked is None or f.compressed or not f.present or look[2] \
                    or look[0] < f.looked[0]:  # fmt: skip
                return False  # new, gzip, moved away, a last line to take, or truncated
            unread.append((f, f.looked[0], look[0]))
        waiting = sum(end - start for _, start, end in unread)
        if waiting > 2 * BATCH_BYTES:
            return False  # a backlog: not worth counting
        try:  # "409"s in what waits: over-counting (an id, a size) only reads sooner
            found = sum(os.pread(f.fd, end - start, start).count(b"409")
                        for f, start, end in unread)  # fmt: skip
        except OSError:
            return False
        span = min(RATE_S, max(1e-3, now - self.last_full))  # since what waits began to arrive
        seen = self._409_seen
        while seen and seen[0][0] < now - RATE_S:
            seen.popleft()
        # Per second, over what the last minute's reads covered (from the start of the first;
        # at least 10 s of it, so that a burst or a chunk read moments ago is not a rate).
        covered = now - (seen[0][0] - seen[0][2]) if seen else 0.0
        usual = sum(n for _, n, _ in seen) / max(RATE_S / 6, covered)
        waited = self.waiting_since is not None and now - self.waiting_since >= self.batch_wait_s
        # More 409s than usual: a burst is explained, and alerted on, now.
        burst = found >= max(SPIKE_MIN_409S, 2 * usual * span)
        if waiting >= BATCH_BYTES or waited or burst:
            # A log busy with 409s makes them usual within a minute, and then batches too.
            seen.append((now, found, span))
            return False
        if self.waiting_since is None:
            self.waiting_since = now
        return True

    def poll_once(self, scan: bool = True, fresh: bool = True) -> int:
        """Scan the watched places (unless `scan` is false), read what is new in every
        followed file, commit and classify; returns lines ingested. `fresh=False` (the follow
        loop): small appends may wait for a batch (`batch_wait_s`, `_batch_waits`)."""
        with self._looks:
            self._started += 1
            fresh = fresh or self._catch_up or self.batch_wait_s <= 0
            self._catch_up = False
        try:
            total = self._look(scan, fresh)
        finally:  # a reader waiting in catch_up reads now, not after the alert evaluation
            with self._looks:
                self._done += 1
                self._looks.notify_all()
        if self.on_batch is not None:
            self.on_batch(total)  # every poll, so time-based work (resolving alerts) goes on
        return total

    def _look(self, scan: bool, fresh: bool) -> int:
        # The look's own thread: the process's other threads (a delivery, a served read) would
        # stretch the next look for work that is not the reading's.
        started, cpu = time.monotonic(), time.thread_time()
        if scan:
            self._scan()
        now = time.monotonic()
        total = 0
        looks: list[tuple[tuple[int, int], Followed, float, tuple[int, int, bool]]] = []
        for key, f in list(self.followed.items()):
            if f.done or now < f.retry_at:
                continue
            try:
                st = os.fstat(f.fd)
            except OSError as exc:
                log.warning("cannot read file", extra={"path": str(f.path), "error": str(exc)})
                continue
            if st.st_size != f.last_size:
                f.last_size, f.last_growth = st.st_size, now
            idle = now - f.last_growth
            take_unterminated = f.compressed or idle >= PARTIAL_LINE_WAIT_S
            looks.append((key, f, idle, (st.st_size, st.st_mtime_ns, take_unterminated)))
        changed = sum(1 for _, f, _, look in looks if look != f.looked)
        wait = changed > 0 and not fresh and self._batch_waits(looks, now)
        if not wait:
            self.waiting_since = None
            self.last_full = started
        files = conflicts = 0
        for key, f, idle, look in looks:
            if look != f.looked and not wait:
                lines, found = self._read_followed(f, now, idle, look[2], look, alone=changed == 1)
                total += lines
                files += lines > 0
                conflicts += found
            if not f.present and idle >= DRAIN_IDLE_S:
                with contextlib.suppress(OSError):
                    os.close(f.fd)
                del self.followed[key]
                log.info("closed drained file", extra={"path": str(f.path)})
        if self.ingester.unclassified:
            # Once per look, after every file's batch: a writer's burst of small writes, read
            # as one batch per file, is explained in one pass over the range it touched.
            self.ingester.classify_pending()
        self.last_look_s = time.monotonic() - started
        # The reading's own cost (what spacing the looks saves), not the alert evaluation or
        # upkeep that `on_batch` runs after it.
        self.last_cpu_s = time.thread_time() - cpu
        self.last_lines, self.last_files, self.last_conflicts = total, files, conflicts
        return total
