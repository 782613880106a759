"""Parsed blocks of one file -> committed batches: the pipeline's writer stage.

Watch commits each block as it comes (in a look over several files that each grew a little, it
hands each over to be committed with the others': ingest.holding). One-shot ingest adds each
block's rows to one open transaction as it is parsed and commits once the transaction holds ~4
of DuckDB's row groups: a commit of a few row groups costs far less than one of ~1.4 (one 32 MB
block of the realistic bench file; measured on its 2M lines: 2.8 against 5.2 s of CPU), and the
writer's work still overlaps the parsing. A batch is committed whole or not at all and carries
the offset of its last line; when a piece fails for a reason of the data, the transaction is
rolled back and the blocks it held are committed by the isolating path (ingest.isolation) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from conflictradar.ingest.blocks import Parsed, concat_parsed
from conflictradar.ingest.isolation import RawOf, systemic
from conflictradar.ingest.rows import AfterInsert, Batch, FileRecord
from conflictradar.ingest.sources import fingerprint
from conflictradar.ingest.store import Store

# One-shot ingest commits once this many rows are held (four of DuckDB's row groups).
COMMIT_ROWS = 4 * 122_880


@dataclass(frozen=True)
class Piece:
    """One parsed block and where it lies in its file."""

    parsed: Parsed
    nbytes: int  # bytes read for it (progress)
    state: str  # the parser's state after it (ParserState.dumps)
    start: int  # byte offset of its first line
    line: int  # number of its first line


@dataclass(frozen=True)
class Hooks:
    """What the writer asks of the ingester."""

    # In a commit's transaction: mark the range pending, or classify it (Ingester._classify_hook).
    classify: Callable[[], AfterInsert | None]
    # A batch through ingest.isolation; returns what was committed.
    commit_isolated: Callable[[Batch, RawOf], Batch]
    # The raw text of lines of the byte range (start, end) whose first line is the third.
    raw_reader: Callable[[int, int, int], RawOf]
    # After each commit: the file's record, what was parsed, what was committed, bytes read.
    committed: Callable[[FileRecord, Parsed, Batch, int], None]
    # Set for a watcher's look over several files: a batch is handed over with the step to take
    # once it is committed (the look commits them together, ingest.holding), not committed here.
    hold: Callable[[Batch, RawOf, Callable[[Batch], None]], None] | None = None


class BatchWriter:
    """Commits the pieces of one file in order; `group_rows` 0 commits each piece alone."""

    def __init__(self, store: Store, rec: FileRecord, drop: tuple[str, int] | None, head: bytes,
                 lines_before: int, time_label: str, group_rows: int, hooks: Hooks) -> None:  # fmt: skip
        self.store = store
        self.rec = rec
        self.drop = drop  # a stored unterminated line the first commit replaces
        self.head = head
        self.lines = lines_before
        self.time_label = time_label  # the format's name for rows that carry read times
        self.group_rows = group_rows
        self.hooks = hooks
        self.held: list[Piece] = []
        self.format = rec.format  # the held rows' `format` (one value per commit)
        self.open = False  # every held piece is in the store's open transaction

    def add(self, piece: Piece) -> None:
        label = self.time_label if piece.parsed.time_read else self.format
        if self.held and label != self.format:
            self.flush()  # rows stored before and after the label keep their own
        if not self.held:
            self.format = label
        self.held.append(piece)
        if not self.group_rows:
            self.flush()
            return
        parsed = piece.parsed
        rows = Batch(parsed.requests, parsed.rejects, parsed.conflict_lines,
                     replace(self.rec, format=self.format), None, parsed.minutes)  # fmt: skip
        try:
            if len(self.held) == 1:
                self.store.begin_rows(self.drop)
                self.open = True
            if self.open:
                self.store.add_rows(rows)
        except Exception as exc:
            self.close()  # the held pieces are committed with isolation instead
            if systemic(exc):
                raise
        if sum(p.parsed.requests.height for p in self.held) >= self.group_rows:
            self.flush()

    def flush(self) -> None:
        """Commit what is held."""
        if not self.held:
            return
        parsed = concat_parsed([p.parsed for p in self.held])
        first, last = self.held[0], self.held[-1]
        nbytes = sum(p.nbytes for p in self.held)
        self.held.clear()
        self.lines += parsed.lines
        self.rec = replace(
            self.rec,
            read_offset=parsed.end,
            lines=self.lines,
            tail_start=parsed.last_line_start if parsed.unterminated else None,
            tail_line=self.lines if parsed.unterminated else None,
            fp_len=len(self.head),
            fp_hash=fingerprint(self.head),
            parser_state=last.state,
            format=self.format,
        )
        batch = Batch(parsed.requests, parsed.rejects, parsed.conflict_lines, self.rec,
                      self.drop, parsed.minutes)  # fmt: skip
        raw_of = self.hooks.raw_reader(first.start, parsed.end, first.line)
        if self.open:
            try:
                self.store.commit_rows(self.rec, batch.requests["ts"], self.hooks.classify())
                self.open = False
            except Exception as exc:
                self.close()
                if systemic(exc):
                    raise
                batch = self.hooks.commit_isolated(batch, raw_of)
        elif self.hooks.hold is not None:
            rec, committed = self.rec, self.hooks.committed
            self.hooks.hold(batch, raw_of, lambda done: committed(rec, parsed, done, nbytes))
            self.drop = None
            return
        else:
            batch = self.hooks.commit_isolated(batch, raw_of)
        self.drop = None
        self.hooks.committed(self.rec, parsed, batch, nbytes)

    def close(self) -> None:
        """Roll back an open transaction (only open here when something failed)."""
        if self.open:
            self.store.rollback_rows()
            self.open = False
