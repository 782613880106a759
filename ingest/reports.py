"""What an ingest reports (pipeline -> render, commands): per file and for the run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FileReport:
    path: str
    status: str = "ok"  # ok | unchanged | unrecognized | error
    format: str | None = None
    envelope: str | None = None
    lines: int = 0
    parsed: int = 0
    rejected: int = 0
    # Of `rejected`: lines of the file's format whose time the store refuses (SPEC 8: before
    # 1970, a day in the future, a stray clock). They are requests with a bad value, not noise,
    # so a path holding only such lines did yield something (its rejects), and exits 0.
    bad_times: int = 0
    skipped: int = 0
    conflicts: int = 0
    message: str = ""

    def fail(self, exc: BaseException) -> None:
        """What was read could not be stored (a batch held for a look's commit)."""
        self.status, self.message = "error", str(exc)


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)
    elapsed_s: float = 0.0
    # 409 requests this ingest added to `conflicts`: a request logged by a gateway and by its
    # service is two 409 lines (the files' counts) but one request.
    new_conflicts: int = 0

    def total(self, attr: str) -> int:
        return sum(int(getattr(f, attr)) for f in self.files)
