"""Log files as byte sources: identity (device, inode, fingerprint), `.gz`, and blocks of whole lines.

A file is recognised again by its fingerprint (a hash of its first bytes) even after a rename,
a move or compression, so the same bytes are never read twice; a file whose first bytes changed
(truncated and rewritten) is a new generation and is read from its start.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from conflictradar.ingest.errors import InputError
from conflictradar.ingest.rows import FileRecord

FP_BYTES = 4096
# A content-only match (another path, another inode) needs at least this many identical bytes:
# about half an access-log line, which always holds a timestamp.
MIN_CONTENT_MATCH = 64
GZIP_MAGIC = b"\x1f\x8b"
# A fresh binary reader over a file's content (a path, or a descriptor kept across renames).
Opener = Callable[[], BinaryIO]


class Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...
    def seekable(self) -> bool: ...
    def seek(self, offset: int, /) -> int: ...


@dataclass(frozen=True)
class Source:
    path: Path  # absolute
    dev: int
    inode: int
    size: int  # on-disk size (compressed size for .gz)
    compressed: bool
    head: bytes  # the first FP_BYTES bytes of the (decompressed) content


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def is_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(2) == GZIP_MAGIC
    except OSError:
        return False


def open_bytes(path: Path, compressed: bool) -> BinaryIO:
    if compressed:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def inspect(path: Path) -> Source:
    """Stat a file and read its head; one clear InputError if that is impossible."""
    path = Path(os.path.abspath(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file")
    compressed = is_gzip(path)
    try:
        with open_bytes(path, compressed) as fh:
            head = fh.read(FP_BYTES)
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return Source(path, st.st_dev, st.st_ino, st.st_size, compressed, head)


def find_record(source: Source, records: Sequence[FileRecord]) -> FileRecord | None:
    """The stored generation this source continues, if any.

    Same content start (same path or inode, or enough identical bytes anywhere) continues a
    record; a changed start on the same path/inode is a new generation (truncate + rewrite).
    """
    best: FileRecord | None = None
    heads: dict[int, str] = {}  # the source's fingerprint by length (records share lengths)
    for rec in records:
        if len(source.head) < rec.fp_len:
            continue
        if rec.fp_len not in heads:
            heads[rec.fp_len] = fingerprint(source.head[: rec.fp_len])
        if heads[rec.fp_len] != rec.fp_hash:
            continue
        same_place = rec.path == str(source.path) or (
            rec.dev == source.dev and rec.inode == source.inode and not rec.compressed
        )
        # Prefer the record that has read furthest: it holds the most recent offset.
        close_enough = same_place or rec.fp_len >= MIN_CONTENT_MATCH
        if close_enough and (best is None or rec.read_offset > best.read_offset):
            best = rec
    return best


@dataclass(frozen=True)
class Block:
    """Whole lines read from `start` to `end` (byte offsets in the decompressed content).

    `data` ends with a newline unless `unterminated` (the file's last line has none yet).
    `oversize` lists (line index within the block, original length) of lines that were cut.
    """

    data: bytes | bytearray
    start: int
    end: int
    unterminated: bool
    oversize: tuple[tuple[int, int], ...] = ()


def read_blocks(
    fh: Reader, start: int, *, block_bytes: int, max_line_bytes: int, take_unterminated: bool,
    recycle: bool = False,
) -> Iterator[Block]:  # fmt: skip
    """Yield blocks of whole lines from `start`; a partial last line is yielded only on request.

    A line longer than `max_line_bytes` is cut to that length (the parser then rejects it) and
    its remainder skipped, so one runaway line cannot exhaust memory. Each block is read straight
    into a buffer, behind the previous block's partial line: the bytes are copied once, by the
    read itself (concatenating and slicing `bytes` cost two more copies, ~0.25 s per GB).

    `recycle`: read each block into the previous block's buffer, for a caller that is done with
    a block when it asks for the next. A fresh 32 MB buffer costs 8,192 page faults to touch
    (measured: 0.15-0.2 s of kernel time per 2M lines).
    """
    if start:
        if fh.seekable():
            fh.seek(start)
        else:  # pragma: no cover - gzip streams are seekable (emulated)
            fh.read(start)
    pos = start
    carry = b""
    spare: bytearray | None = None
    while True:
        data = _read_after(fh, carry, _read_size(fh, block_bytes), spare)
        if len(data) == len(carry):
            if carry and take_unterminated:
                yield Block(carry, pos, pos + len(carry), True)
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > max_line_bytes:
                yield from _oversize_line(fh, bytes(data), pos, block_bytes, max_line_bytes,
                                          take_unterminated)  # fmt: skip
                return
            carry = bytes(data)
            continue
        carry = bytes(data[cut + 1 :])
        del data[cut + 1 :]  # shrinks in place (the allocation stays)
        yield Block(data, pos, pos + cut + 1, False)
        pos += cut + 1
        if recycle:
            spare = data


def _read_size(fh: Reader, block_bytes: int) -> int:
    """Bytes to ask for next: a block, or only what the file still holds when the reader can
    tell. A watched file grows by a few hundred bytes between looks; a block-sized buffer for
    them cost ~25% of a core at 100 lines/s (zero-filling and faulting 32 MB per look)."""
    remaining = getattr(fh, "remaining", None)
    if callable(remaining):
        return max(0, min(block_bytes, int(remaining())))
    if isinstance(fh, io.BufferedReader):
        try:
            return max(0, min(block_bytes, os.fstat(fh.fileno()).st_size - fh.tell()))
        except (OSError, ValueError):  # pragma: no cover - not a plain file after all
            return block_bytes
    return block_bytes


def _read_after(fh: Reader, carry: bytes, n: int, spare: bytearray | None = None) -> bytearray:
    """`carry` followed by up to `n` bytes read from `fh` (fewer only at the end of the file),
    in `spare` if given (resized: within its allocation, that touches no new memory)."""
    buf = bytearray(len(carry) + n) if spare is None else _resized(spare, len(carry) + n)
    buf[: len(carry)] = carry
    got = len(carry)
    with memoryview(buf) as view:
        while got < len(buf):
            k = _read_into(fh, view[got:])
            if not k:
                break
            got += k
    del buf[got:]
    return buf


def _resized(buf: bytearray, size: int) -> bytearray:
    """`buf` at `size` bytes, or a fresh buffer if something still holds a view of it."""
    try:
        if len(buf) < size:
            buf.extend(bytes(size - len(buf)))
        else:
            del buf[size:]
    except BufferError:  # pragma: no cover - the parser keeps no view of a block it finished
        return bytearray(size)
    return buf


def _read_into(fh: Reader, view: memoryview) -> int:
    """Fill the start of `view` from `fh` (released after, so its buffer can be resized)."""
    with view:
        readinto = getattr(fh, "readinto", None)
        if readinto is not None:
            return int(readinto(view) or 0)
        chunk = fh.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)


def _oversize_line(
    fh: Reader, data: bytes, pos: int, block_bytes: int, max_line_bytes: int,
    take_unterminated: bool,
) -> Iterator[Block]:  # fmt: skip
    """Skip to the end of a runaway line, keep its first bytes, then resume normal reading."""
    skipped = len(data)
    kept = data[:max_line_bytes]
    while True:
        chunk = fh.read(block_bytes)
        if not chunk:
            if take_unterminated:
                yield Block(kept, pos, pos + skipped, True, ((0, skipped),))
            return
        nl = chunk.find(b"\n")
        if nl < 0:
            skipped += len(chunk)
            continue
        skipped += nl + 1
        yield Block(kept + b"\n", pos, pos + skipped, False, ((0, skipped - 1),))
        rest = chunk[nl + 1 :]
        # Continue with the remainder of this chunk followed by the rest of the file.
        yield from _continue(
            rest, fh, pos + skipped, block_bytes, max_line_bytes, take_unterminated
        )
        return


def _continue(
    rest: bytes, fh: Reader, pos: int, block_bytes: int, max_line_bytes: int,
    take_unterminated: bool,
) -> Iterator[Block]:  # fmt: skip
    for block in read_blocks(_Prefixed(rest, fh), 0, block_bytes=block_bytes,
                             max_line_bytes=max_line_bytes,
                             take_unterminated=take_unterminated):  # fmt: skip
        yield Block(block.data, block.start + pos, block.end + pos, block.unterminated,
                    block.oversize)  # fmt: skip


class _Prefixed:
    """A reader that returns `prefix` first, then the rest of `fh` (for resuming after a cut)."""

    def __init__(self, prefix: bytes, fh: Reader) -> None:
        self._prefix = prefix
        self._fh = fh

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int) -> int:  # pragma: no cover - never called with start=0
        raise OSError("not seekable")

    def read(self, n: int) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return self._fh.read(n)


def same_start(opener: Opener, head: bytes) -> bool:
    """Whether the file still starts with `head` (not truncated and rewritten meanwhile)."""
    try:
        with opener() as fh:
            return fh.read(len(head)) == head
    except (OSError, EOFError):
        return False


def first_block(opener: Opener) -> bytes:
    """Enough of the file's start for detection: whole lines of up to ~1 MB."""
    with opener() as fh:
        data = fh.read(1 << 20)
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut > 0 else data
