"""Following logs: files, folders and globs, through rotation, truncation and restarts.

Each followed file is held by an open descriptor, like `tail -F`: after a rename (logrotate's
default) or a delete, what the writer added before letting go is still read from the old
descriptor, and the new file at the path is followed from its start. Reads go through the same
`Ingester` as one-shot ingest, so offsets and rows commit together and a restart (even after
kill -9) resumes exactly. The files are looked at every LOOK_EVERY_S (an fstat each; only
the ones that grew are read, and small appends may wait for a batch: ingest.batching); watchdog
events about new, moved or deleted files trigger a rescan of the watched places, and a rescan
every `poll_interval` is the safety net.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from conflictradar.ingest.batching import Batcher
from conflictradar.ingest.followed import Followed, Opened, expand_watch, open_followed
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.reports import FileReport
from conflictradar.ingest.sources import GZIP_MAGIC
from conflictradar.ingest.store import Store
from conflictradar.ingest.structure_events import stop_observer, watch_structure

log = logging.getLogger("conflictradar.watch")

# A followed file no longer at a watched path is closed after this long without growth.
DRAIN_IDLE_S = 10.0
# A last line without its newline is read anyway once the file has not grown for this long.
PARTIAL_LINE_WAIT_S = 30.0
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
# Under `[watch] batch_wait`, small appends may wait for a batch (ingest.batching). A reader
# that asks (`catch_up`: `sql`, scripts and alert checks served by the watcher) sees every line
# appended up to FRESH_S before it asked; the dashboard, which asks for no such read, sees each
# batch as it is committed.
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
        # Small appends wait up to batch_wait_s for company (ingest.batching); 0: never.
        self.batcher = Batcher(batch_wait_s)
        self._looks = threading.Condition()  # guards the three below
        self._started = self._done = 0  # looks begun and finished
        self._catch_up = False  # a reader asked for everything appended so far
        self._running = False  # the follow loop is running (else no look comes to wait for)
        self._kick = threading.Event()  # wakes the loop before its pace is up

    # -- filesystem events -------------------------------------------------------------------

    def start_events(self) -> None:
        """Rescan at the next look when watchdog sees a file created, moved or deleted under
        the watched places (ingest.structure_events)."""
        self._observer = watch_structure(self.specs, self.wake)

    def stop_events(self) -> None:
        stop_observer(self._observer)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Look every LOOK_EVERY_S: an fstat per followed file, and a read only of the files
        that changed. The watched places are rescanned for new, renamed and deleted files when
        watchdog reports such a change, and every `poll_interval` as the safety net. Under a
        `cpu_budget`, looks are spaced so that what they cost the process (reading, explaining,
        alert evaluation) keeps to that share of a core; the reads it serves between looks
        (the dashboard's, `sql`'s) do not hold the logs back. Under `batch_wait_s`, a look may
        leave small appends for a later one (ingest.batching); a reader's `catch_up` wakes the loop
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
            if self.last_waited:  # stopping: leave nothing read but unstored
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
        return self.batcher.waiting_since is not None

    def catch_up(self, timeout_s: float = CATCH_UP_S) -> None:
        """Called before a fresh read served by the watcher (`sql`'s, a script's, an alerts
        check; wire.Header.fresh): unless the latest look that left nothing unread began within
        FRESH_S, have the loop look now, reading everything appended (appends waiting for a
        batch included), and wait for that look (at most `timeout_s`): the reader sees every
        line appended up to FRESH_S before it asked. Readers polling faster than FRESH_S cost
        at most a look each FRESH_S."""
        with self._looks:
            if not self._running or time.monotonic() - self.batcher.last_full < FRESH_S:
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
        self, f: Followed, opened: Opened, now: float,
        take_unterminated: bool, alone: bool = False, hold: bool = False,
    ) -> FileReport | None:  # fmt: skip
        """Read what is new in one followed file; its report (None: not read now). `alone`: the
        only file this look reads, so a small append is explained in its own commit's
        transaction. `hold`: a look over several files, so a small append waits to be
        committed with the others' (Ingester.commit_held)."""
        try:
            return self.ingester.ingest_source(opened.source, opened.opener, take_unterminated,
                                               classify_now=alone and opened.small,
                                               hold=hold and opened.small)  # fmt: skip
        except Exception as exc:  # one bad file must not stop the others
            self._failed(f, now, str(exc))
            return None

    def _failed(self, f: Followed, now: float, error: str) -> None:
        # Not tied to its lines (those become rejects): the database or the disk. Back off,
        # doubling up to RETRY_MAX_S, instead of hammering the same bytes.
        f.failures += 1
        wait = min(RETRY_MAX_S, 2.0 ** (f.failures - 1))
        f.retry_at = now + wait
        log.error("reading failed", extra={"path": str(f.path), "error": error,
                                           "retry_in_s": wait})  # fmt: skip

    def _finish(
        self, f: Followed, report: FileReport, now: float, look: tuple[int, int, bool]
    ) -> tuple[int, int]:
        """After a file's read is committed: the lines committed, and the 409 lines among them."""
        if report.status == "error":  # a held batch that could not be stored
            self._failed(f, now, report.message)
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
        """Whether this look leaves the changed files' appends for a later one: only when every
        change is a small append to a file read before (ingest.batching decides on those)."""
        unread: list[tuple[int, int, int]] = []  # (descriptor, from, to)
        for _, f, _, look in looks:
            if look == f.looked:
                continue
            if f.looked is None or f.compressed or not f.present or look[2] \
                    or look[0] < f.looked[0]:  # fmt: skip
                return False  # new, gzip, moved away, a last line to take, or truncated
            unread.append((f.fd, f.looked[0], look[0]))
        return self.batcher.waits(unread, now)

    def poll_once(self, scan: bool = True, fresh: bool = True) -> int:
        """Scan the watched places (unless `scan` is false), read what is new in every
        followed file, commit and classify; returns lines ingested. `fresh=False` (the follow
        loop): small appends may wait for a batch (`batch_wait_s`, `_batch_waits`)."""
        with self._looks:
            self._started += 1
            fresh = fresh or self._catch_up or self.batcher.wait_s <= 0
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
            self.batcher.read_all(started)
        files = conflicts = 0
        small_bytes = self.ingester.settings.ingest.block_bytes
        reading = [] if wait else [(f, look, open_followed(f, idle, small_bytes))
                                   for _key, f, idle, look in looks if look != f.looked]  # fmt: skip
        if changed > 1:  # several files' small appends are parsed together (ingest.preparse)
            try:
                self.ingester.preparse([(o.source, o.opener) for _, _, o in reading
                                        if o is not None and o.small])  # fmt: skip
            except Exception as exc:  # it only saves work: each file is then parsed alone
                log.warning("parsing appends together failed", extra={"error": str(exc)})
        read: list[tuple[Followed, FileReport, tuple[int, int, bool]]] = []
        for f, look, opened in reading:
            report = None if opened is None else self._read_followed(
                f, opened, now, look[2], alone=changed == 1, hold=changed > 1)  # fmt: skip
            if report is not None:
                read.append((f, report, look))
        self.ingester.preparsed.clear()
        # Several files' small appends, read above, are committed together (ingest.holding).
        self.ingester.commit_held()
        for f, report, look in read:
            lines, found = self._finish(f, report, now, look)
            total += lines
            files += lines > 0
            conflicts += found
        for key, f, idle, _look in looks:  # after the commit: a held batch may re-read its lines
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
