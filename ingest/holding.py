"""A watcher's look over several files that each grew a little: their batches, held and then
committed in one transaction.

Committing each file's few new lines alone costs a toll per file (a transaction, an insert per
table, the file's record): ~10 ms of CPU a file, so 48 files growing by 10 lines each cost a
watcher 17% of a core at a look every 5 s, measured. Held here instead, the look's batches of
every file go into one transaction with one insert per table (`Store.commit_batches`).

Nothing held is stored until that commit, and the writer's step after a commit (the file's
record in the ingester's cache, the counts of its report) runs only after it: a failure leaves
every file at the offset its stored record says, to be read again. When the shared commit fails
for a reason of the data, each batch is committed alone through ingest.isolation, as it would
have been without holding; a file whose batch still fails keeps its later batches back, and its
`failed` step tells the caller why (the watcher retries that file later).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from conflictradar.ingest.isolation import RawOf, sentence, systemic
from conflictradar.ingest.rows import AfterInsert, Batch, FileRecord
from conflictradar.ingest.store import Store

log = logging.getLogger("conflictradar.ingest")


@dataclass(frozen=True)
class HeldBatch:
    """A batch waiting for the look's commit, with what to do once it is stored."""

    batch: Batch
    raw_of: RawOf
    done: Callable[[Batch], None]  # the writer's step after a commit, given what was committed
    failed: Callable[[BaseException], None]  # when it could not be stored


class Holding:
    """The batches of one look, committed together by `commit`."""

    def __init__(self, store: Store, after: Callable[[], AfterInsert | None],
                 commit_one: Callable[[Batch, RawOf], Batch]) -> None:  # fmt: skip
        self.store = store
        self.after = after  # the hook for the commit's transaction (marks ranges pending)
        self.commit_one = commit_one  # one batch, isolating the lines that make it fail
        self.held: list[HeldBatch] = []

    def hold(self, held: HeldBatch) -> None:
        self.held.append(held)

    def pending(self) -> dict[int, FileRecord]:
        """The records the held batches will store, by file id (a file's latest): what a file
        read again before the commit must resume from."""
        return {h.batch.file.file_id: h.batch.file for h in self.held}

    def commit(self) -> None:
        """Store every held batch: in one transaction, or, when that fails for a reason of the
        data, each alone. Each batch's `done` or `failed` step runs once it is decided."""
        held, self.held = self.held, []
        if not held:
            return
        try:
            self.store.commit_batches([h.batch for h in held], self.after())
        except Exception as exc:
            if systemic(exc):
                for h in held:
                    h.failed(exc)
                return
            log.info("a look's batches could not be committed together; committing each alone",
                     extra={"files": len({h.batch.file.file_id for h in held}),
                            "error": sentence(exc)})  # fmt: skip
            self._one_by_one(held)
            return
        for h in held:
            self._done(h, h.batch)

    def _one_by_one(self, held: list[HeldBatch]) -> None:
        failed: set[int] = set()
        for h in held:
            if h.batch.file.file_id in failed:
                continue  # its offset must not move past the batch before it (already told)
            try:
                committed = self.commit_one(h.batch, h.raw_of)
            except Exception as exc:
                failed.add(h.batch.file.file_id)
                h.failed(exc)
                continue
            self._done(h, committed)

    @staticmethod
    def _done(h: HeldBatch, committed: Batch) -> None:
        """The step after a commit, for every batch committed even if one step fails: a file
        whose cached record did not move would be read again from its old offset."""
        try:
            h.done(committed)
        except Exception as exc:
            log.error("after storing a batch", extra={"path": h.batch.file.path,
                                                       "error": sentence(exc)})  # fmt: skip
