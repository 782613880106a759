"""A followed file: its open descriptor and what was last seen of it, read through pread.

The watcher (ingest.tail) holds each followed file by descriptor, so a file renamed or deleted
by rotation is still read to its end; the readers here share that descriptor safely.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from conflictradar.ingest.paths import folder_files
from conflictradar.ingest.sources import FP_BYTES, Opener, Source

log = logging.getLogger("conflictradar.watch")


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
            candidates = folder_files(spec)
        else:
            candidates = [Path(spec)]
        for c in candidates:
            real = os.path.realpath(c)  # a symlink swapped to a new target follows the target
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.stat(real).st_mode):
                    out.setdefault(real, Path(real))
    return list(out.values())


def source_of(f: Followed) -> Source | None:
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


# A .gz that grew this recently may still be being written by gzip or logrotate.
GZIP_SETTLE_S = 2.0


class Opened(NamedTuple):
    """A followed file as a look finds it: its state, a reader over what it held when the look
    began, and whether what is new is a small append (at most `small_bytes`)."""

    source: Source
    opener: Opener
    small: bool


def open_followed(f: Followed, idle: float, small_bytes: int) -> Opened | None:
    """`f` as this look finds it (None: not read now)."""
    if f.compressed and idle < GZIP_SETTLE_S:
        return None  # still being written by gzip/logrotate: read it once it is complete
    source = source_of(f)
    if source is None:
        return None
    opener: Opener
    fd = f.fd
    if f.compressed:

        def opener(fd: int = fd) -> BinaryIO:
            return gzip.GzipFile(fileobj=FdReader(fd))  # type: ignore[return-value]
    else:

        def opener(fd: int = fd, limit: int = source.size) -> BinaryIO:
            return FdReader(fd, limit)  # type: ignore[return-value]

    small = (
        not f.compressed and f.looked is not None
        and 0 <= source.size - f.looked[0] <= small_bytes
    )  # fmt: skip
    return Opened(source, opener, small)
