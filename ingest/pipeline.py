"""One-shot ingest: paths -> files -> blocks of lines -> parsed rows -> batches committed to the store.

Parsing of the next block overlaps with the commit of the current one (two stages, one thread
each), since polars and DuckDB both release the GIL. Every commit carries the file's new offset,
so an interrupted ingest resumes exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from conflictradar.ingest import detect, endpoints, envelopes, isolation
from conflictradar.ingest.batches import COMMIT_ROWS, BatchWriter, Hooks, Piece
from conflictradar.ingest.blocks import Parsed, load_context, parse_block
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.errors import InputError
from conflictradar.ingest.formats import (
    Format,
    ParserState,
    UnknownFormatError,
    get_format,
    names,
    time_read_label,
)
from conflictradar.ingest.holding import HeldBatch, Holding
from conflictradar.ingest.lines import split_lines
from conflictradar.ingest.preparse import GROUP_BYTES, Candidate, Preparsed
from conflictradar.ingest.reports import FileReport, IngestReport
from conflictradar.ingest.rows import AfterInsert, Batch, FileRecord
from conflictradar.ingest.schema import STRAY, TIME_REASONS
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.sources import (
    FP_BYTES,
    Opener,
    Source,
    find_record,
    fingerprint,
    first_block,
    inspect,
    open_bytes,
    read_blocks,
    same_start,
)
from conflictradar.ingest.store import Store

# One-shot ingest marks each batch's time range pending and explains the 409s in bulk, after
# this many rows and at the end: one pass over a long range costs far less than a pass per
# batch (measured on 2M lines: classifying per batch on a second thread cost +0.8 s of CPU).
CLASSIFY_EVERY_ROWS = 4_000_000

Progress = Callable[[int], None]  # bytes read since the last call


class Ingester:
    """Reads files into the store; one per run (it caches the file records it has seen)."""

    def __init__(self, store: Store, settings: Settings, forced: str | None = None,
                 progress: Progress | None = None, classify: bool = True,
                 classify_later: bool = False) -> None:  # fmt: skip
        self.store = store
        self.settings = settings
        self.forced = get_format(forced, settings.formats) if forced else None
        self.forced_spec = forced
        self.progress = progress or (lambda n: None)
        self.ctx = load_context(store, settings)
        # `classify=False` exists for the benchmark that prices classification; the conflicts
        # table then lags until `Classifier.classify_all` runs.
        self.classifier = Classifier(settings.classify) if classify else None
        # Batches only mark their range pending, and `classify_pending()` explains them: always
        # with `classify_later` (watch: once per look, over all the look's batches), and inside
        # ingest() (one bulk pass).
        self._classify_later = classify_later and self.classifier is not None
        self._deferred = self._classify_later
        self._one_shot = False  # inside ingest(): blocks are committed several at a time
        self.unclassified = 0  # rows committed since the last classification
        if self.classifier is not None:
            # Ranges a crashed run left unclassified come first.
            self.classifier.classify_pending(store.con)
        self.records = store.file_records()
        self._next_id = store.next_file_id()
        self.preparsed = Preparsed()  # a look's appends of many files, parsed together
        # A watcher's look over several files holds their batches and commits them together.
        self.holding = Holding(store, self._classify_hook, self._commit)

    def ingest(self, paths: Sequence[Path]) -> IngestReport:
        """One-shot ingest. Batches are inserted on one DuckDB thread (the parser has the other
        core); the 409s are explained in bulk, with every thread, as rows accumulate and at the
        end. Ranges are recorded as pending in each batch's transaction, so a crash loses none:
        the next run explains them before it reads anything."""
        started = time.perf_counter()
        report = IngestReport()
        before = self._conflict_count()
        self._deferred = self.classifier is not None
        self._one_shot = True
        try:
            with self.store.threads(1):
                for path in paths:
                    try:
                        report.files.append(self.ingest_file(path))
                    except InputError as exc:
                        report.files.append(FileReport(str(path), status="error", message=str(exc)))
        finally:
            self._deferred = self._classify_later
            self._one_shot = False
        self.classify_pending()
        self.learn_folds()
        report.new_conflicts = self._conflict_count() - before
        report.elapsed_s = time.perf_counter() - started
        return report

    def _conflict_count(self) -> int:
        row = self.store.con.execute("SELECT count(*) FROM conflicts").fetchone()
        return int(row[0]) if row else 0

    def classify_pending(self) -> None:
        """Explain the 409s of every range committed but not yet classified (one transaction)."""
        if self.classifier is not None:
            with self.store.threads(None):
                self.classifier.classify_pending(self.store.con)
        self.unclassified = 0

    # -- one file ------------------------------------------------------------------------

    def _resume_point(self, source: Source) -> tuple[FileRecord | None, int, int, bool]:
        """(record, start offset, first line number, re-reading an unterminated tail?)."""
        rec = find_record(source, list(({r.file_id: r for r in self.records}
                                        | self.holding.pending()).values()))  # fmt: skip
        if rec is None:
            return None, 0, 1, False
        if not source.compressed and source.size < rec.read_offset:
            return None, 0, 1, False  # truncated: a new generation, from the start
        if rec.tail_start is not None and rec.tail_line is not None:
            return rec, rec.tail_start, rec.tail_line, True
        return rec, rec.read_offset, rec.lines + 1, False

    def ingest_file(self, path: Path) -> FileReport:
        source = inspect(path)
        return self.ingest_source(source, lambda: open_bytes(source.path, source.compressed))

    def ingest_source(
        self, source: Source, opener: Opener, take_unterminated: bool = True,
        classify_now: bool = False, hold: bool = False,
    ) -> FileReport:  # fmt: skip
        """Read what is new in one file (resuming at its stored offset) into the store.

        `opener` returns a fresh binary reader over the file's content (a path or a kept file
        descriptor, for files followed across renames). A final line without a newline is read
        only when `take_unterminated`; if it is completed later it is re-read and replaced.
        `classify_now` explains the batch's 409s in its own transaction even when classification
        is deferred (watch: a look that reads a small append of one file needs one transaction,
        not a commit and then a classification pass with its pending-range bookkeeping).
        `hold`: the batches wait for `commit_held` (watch: a look over several files commits
        their small appends together); the report counts them once they are committed.
        """
        if classify_now and self._deferred and self.classifier is not None:
            self._deferred = False
            try:
                return self._ingest_source(source, opener, take_unterminated, hold)
            finally:
                self._deferred = True
        return self._ingest_source(source, opener, take_unterminated, hold)

    def preparse(self, sources: Sequence[tuple[Source, Opener]]) -> None:
        """Parse the small appends of files about to be read, one block per format
        (ingest.preparse): their reads take the parts instead of parsing alone."""
        found = []
        for source, opener in sources:
            rec, start, first_line, retail = self._resume_point(source)
            if rec is None or retail or rec.envelope or self.forced or not rec.format \
                    or source.size - start > GROUP_BYTES:  # fmt: skip
                continue
            with contextlib.suppress(InputError):
                fmt, _, state = self._choose_format(source, rec, opener)
                if fmt is not None:
                    found.append(Candidate(str(source.path), opener, start, first_line, fmt, state))
        cfg = self.settings.ingest
        self.preparsed.fill(found, self.ctx, cfg.block_bytes, cfg.max_line_bytes)

    def commit_held(self) -> None:
        """Commit the batches held by `ingest_source(hold=True)` (ingest.holding): their reports
        count them, or say "error" with why when they could not be stored."""
        self.holding.commit()

    def _ingest_source(self, source: Source, opener: Opener, take_unterminated: bool,
                       hold: bool = False) -> FileReport:  # fmt: skip
        report = FileReport(str(source.path))
        if not source.head:
            report.status = "unchanged"
            report.message = "empty file"
            return report
        rec, start, first_line, retail = self._resume_point(source)
        if rec and not source.compressed and source.size == rec.read_offset:
            report.status, report.format, report.envelope = "unchanged", rec.format, rec.envelope
            return report
        fmt, envelope, state = self._choose_format(source, rec, opener)
        if fmt is None:
            report.status = "unrecognized"
            report.message = (
                f"{source.path}: format not recognised; tried {', '.join(names())}"
                " (use --format NAME, nginx:'<log_format>', apache:'<LogFormat>' or a"
                " [formats.NAME] JSON mapping in the config file)"
            )
            return report
        report.format, report.envelope = fmt.name, envelope
        if rec is None:
            rec = FileRecord(
                file_id=self._next_id, path=str(source.path), dev=source.dev, inode=source.inode,
                fp_len=len(source.head), fp_hash=fingerprint(source.head), read_offset=0, lines=0,
                tail_start=None, tail_line=None, format=fmt.name, envelope=envelope,
                parser_state=None, compressed=source.compressed,
            )  # fmt: skip
            self._next_id += 1
        rec = replace(rec, path=str(source.path), dev=source.dev, inode=source.inode,
                      compressed=source.compressed, format=fmt.name, envelope=envelope)  # fmt: skip
        self._read(source, opener, rec, start, first_line, retail, fmt, envelope, state, report,
                   take_unterminated, hold)  # fmt: skip
        return report

    def _choose_format(
        self, source: Source, rec: FileRecord | None, opener: Opener
    ) -> tuple[Format | None, str | None, ParserState]:
        state = ParserState.loads(rec.parser_state) if rec else ParserState()
        if self.forced is not None:
            state.extra["format_spec"] = self.forced_spec or self.forced.name
            if rec is None or rec.envelope is None:
                sample = split_lines(first_block(opener))
                env = envelopes.detect_envelope(detect.sample_of(sample)) if sample.len() else None
            else:
                env = rec.envelope
            return self.forced, env, state
        if rec is not None and rec.format:
            spec = state.extra.get("format_spec", rec.format)
            try:
                return get_format(spec, self.settings.formats), rec.envelope, state
            except UnknownFormatError as exc:  # e.g. its [formats.NAME] mapping was removed
                raise InputError(
                    f"{source.path} was read as {spec!r}, which no longer resolves: {exc}"
                ) from exc
        found = detect.detect(split_lines(first_block(opener)))
        if found.format is not None:
            state.extra["format_spec"] = found.format.name
        return found.format, found.envelope, state

    def _read(
        self, source: Source, opener: Opener, rec: FileRecord, start: int, first_line: int,
        retail: bool, fmt: Format, envelope: str | None, state: ParserState, report: FileReport,
        take_unterminated: bool, hold: bool = False,
    ) -> None:  # fmt: skip
        cfg = self.settings.ingest
        drop = (rec.path, rec.tail_line) if retail and rec.tail_line is not None else None
        stage: queue.Queue[Piece | BaseException | None]
        stage = queue.Queue(maxsize=2)
        abort = threading.Event()

        ctx = self.ctx  # this file's parsing context, extended by the folds it learns

        def parse(data: bytes | bytearray, bstart: int, line: int, unterminated: bool,
                  oversize: Sequence[tuple[int, int]], final: bool) -> Parsed:  # fmt: skip
            """parse_block, with the lines that make it fail split off as rejects."""

            def one(data: bytes | bytearray, bstart: int, line: int, unterminated: bool,
                    oversize: Sequence[tuple[int, int]], final: bool) -> Parsed:  # fmt: skip
                return parse_block(data, bstart, line, unterminated, oversize, fmt, envelope,
                                   state, ctx, str(source.path), final=final)  # fmt: skip

            return isolation.parse_isolated(one, data, bstart, line, unterminated, oversize,
                                            final, str(source.path))  # fmt: skip

        def produce() -> None:
            nonlocal ctx
            try:
                with opener() as fh:
                    line = first_line
                    pending: bytes | bytearray = b""
                    pending_start = start
                    for block in read_blocks(fh, start, block_bytes=cfg.block_bytes,
                                             max_line_bytes=cfg.max_line_bytes,
                                             take_unterminated=take_unterminated,
                                             recycle=True):  # fmt: skip
                        data = pending + block.data if pending else block.data
                        bstart = pending_start if pending else block.start
                        shift = 0
                        if pending:
                            shift = pending.count(b"\n")
                        oversize = tuple((i + shift, n) for i, n in block.oversize)
                        # A part parsed with other files' appends, if it is of these very
                        # bytes (ingest.preparse); else this block is parsed here.
                        parsed = self.preparsed.take(str(source.path), bstart, data, line, ctx)
                        if parsed is None:
                            parsed = parse(data, bstart, line, block.unterminated, oversize,
                                           block.unterminated)  # fmt: skip
                        if parsed.folds:
                            ctx = replace(ctx, folds=ctx.folds + parsed.folds)
                        consumed_bytes = parsed.end - bstart
                        pending = data[consumed_bytes:]
                        pending_start = parsed.end
                        line += parsed.lines
                        if abort.is_set():
                            break
                        stage.put(Piece(parsed, block.end - block.start, state.dumps(), bstart,
                                        line - parsed.lines))  # fmt: skip
                        if not source.compressed and block.end >= source.size:
                            # What the file held when this look began: a file written as fast
                            # as it is read must not hold the caller (watch's poll, its other
                            # files, its alert evaluation) forever; the next look goes on.
                            break
                    if pending and take_unterminated:
                        parsed = parse(pending, pending_start, line, False, (), True)
                        stage.put(Piece(parsed, 0, state.dumps(), pending_start, line))
                stage.put(None)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                stage.put(exc)

        worker = threading.Thread(target=produce, name="conflictradar-parse", daemon=True)
        worker.start()

        def committed(rec: FileRecord, parsed: Parsed, batch: Batch, nbytes: int) -> None:
            # Keep the cache current after every commit: a later failure must not make
            # the next look resume from an older offset.
            self.records = [r for r in self.records if r.file_id != rec.file_id] + [rec]
            report.lines += parsed.lines
            report.parsed += batch.requests.height
            report.rejected += batch.rejects.height
            if batch.rejects.height:  # a filter costs ~0.5 ms even on nothing
                report.bad_times += batch.rejects.filter(
                    pl.col("reason").is_in([*TIME_REASONS, STRAY])
                ).height
            report.skipped += parsed.skipped
            report.conflicts += batch.conflict_lines.height
            self.progress(nbytes)
            if self._deferred:
                self.unclassified += batch.requests.height
                if self.unclassified >= CLASSIFY_EVERY_ROWS:
                    self.classify_pending()

        def held(batch: Batch, raw_of: isolation.RawOf, done: Callable[[Batch], None]) -> None:
            self.holding.hold(HeldBatch(batch, raw_of, done, report.fail))

        head = source.head[:FP_BYTES]
        hooks = Hooks(
            classify=self._classify_hook,
            commit_isolated=self._commit,
            raw_reader=lambda a, b, line: isolation.raw_reader(opener, a, b, line),
            committed=committed,
            hold=held if hold else None,
        )
        writer = BatchWriter(self.store, rec, drop, head, first_line - 1,
                             time_read_label(fmt.name), COMMIT_ROWS if self._one_shot else 0,
                             hooks)  # fmt: skip
        try:
            while True:
                item = stage.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    writer.flush()  # what was read before the failure is sound
                    if isinstance(item, OSError | EOFError):
                        raise InputError(f"cannot read {source.path}: {item}") from item
                    raise item
                if not same_start(opener, head):
                    # Truncated and rewritten while we read (copytruncate): these bytes may
                    # belong to the new content. Commit nothing of them (what was held was
                    # read before the check that passed for it); the next look starts afresh.
                    writer.flush()
                    report.status = "changed"
                    break
                if item.parsed.folds:
                    # Rows held were templated without these folds: store them first, so
                    # recording the folds re-templates them with everything else stored.
                    writer.flush()
                    self._record_folds(item.parsed.folds)
                writer.add(item)
            writer.flush()
        finally:
            writer.close()
            abort.set()
            while worker.is_alive() or not stage.empty():  # let the producer finish
                with contextlib.suppress(queue.Empty):
                    stage.get(timeout=0.05)
            worker.join()

    def _commit(self, batch: Batch, raw_of: isolation.RawOf) -> Batch:
        """Commit one batch; lines that make it fail become rejects (ingest.isolation). Returns
        what was committed."""
        store_only = self.classifier.mark_pending if self.classifier is not None else None
        batch, deferred = isolation.commit_isolated(self.store, batch, self._classify_hook(),
                                                    store_only, raw_of)  # fmt: skip
        if deferred and not self._deferred:
            self.classify_pending()  # a range that keeps failing is quarantined there
        return batch

    def _classify_hook(self) -> AfterInsert | None:
        """In the batch's transaction: mark the range pending during a one-shot ingest, else
        classify it right there (watch: causes visible at commit)."""
        if self.classifier is None:
            return None
        return self.classifier.mark_pending if self._deferred else self.classifier.classify_range

    def learn_folds(self) -> None:
        """Learn high-cardinality positions from the endpoints stored so far, re-template rows."""
        threshold = self.settings.endpoints.fold_threshold
        stored = self.store.stored_endpoints()
        if len(stored) < threshold:
            return
        series = pl.Series("endpoint", stored, dtype=pl.String)
        new = endpoints.learn_folds(series, threshold, self.ctx.folds)
        if new:
            self._record_folds(tuple(new))

    def _record_folds(self, new: tuple[endpoints.Fold, ...]) -> None:
        """Persist new folds and re-template what is already stored (one transaction)."""
        fresh = tuple(f for f in new if f not in self.ctx.folds)
        if not fresh:
            return
        self.holding.commit()  # rows held were templated without them: stored first, re-templated
        self.store.record_folds(fresh)
        self.ctx = replace(self.ctx, folds=self.ctx.folds + fresh)
