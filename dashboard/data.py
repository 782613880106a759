"""The dashboard's side of the read API: settings from the launcher, a reader, cached reads.

store -> (read queries in ingest.reads) -> here -> pages. The launcher (dashboard.server) passes the
database and config paths as CONFLICTRADAR_DB / CONFLICTRADAR_CONFIG, so settings resolve the same
way as for every other command. Reads are cached for one refresh period and keyed by the data's
version, so an ingest commit shows up at the next refresh and an idle database is not re-queried.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import streamlit as st

from conflictradar.dashboard.launch import TIMINGS_ENV
from conflictradar.ingest import alert_reads, confidence_reads, reads
from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.reader import Reader, open_reader, reading_batch
from conflictradar.ingest.reads import DataStatus
from conflictradar.ingest.settings import Settings, load_settings

# The modules whose read functions `fetch` may run (looked up by name inside the cache).
READ_MODULES = {m.__name__: m for m in (reads, alert_reads, confidence_reads)}

REFRESH_S = 5.0
# The data status is re-read when the file changes, and at least this often regardless.
STATUS_MAX_AGE_S = 60.0
# How long a read waits for a writer to let go of the file before the page says so.
LOCK_WAIT_S = 2.0
# Pages read what a running watcher has stored: they re-read when it commits, and the live view
# every 5 s, so having it first read the lines it keeps for a batch (`[watch] batch_wait`) for
# every page view made each view wait for a look and cost the watcher those looks (demo pages
# 1.0-1.6 s -> 1.4-2.4 s, its watcher 11% -> 21% of a core, `bench.dashboard_live`). The SQL
# page's Run, a query a user asks for that moment, reads fresh (`reader`).
FRESH = False

P = ParamSpec("P")
T = TypeVar("T")
_spent = threading.local()  # this script thread's reads: [count, misses, seconds]


def settings() -> Settings:
    """Settings as the launcher resolved them (env: CONFLICTRADAR_DB, CONFLICTRADAR_CONFIG);
    with CONFLICTRADAR_LAKE (`dashboard --lake DIR`) the data is the lake's."""
    s = load_settings()
    lake = os.environ.get("CONFLICTRADAR_LAKE")
    return replace(s, db=Path(lake)) if lake else s


_batch = threading.local()  # this script thread's reading batch, while one is open


@contextmanager
def batch() -> Iterator[None]:
    """The reads of one run (a page view, a refresh) share one reader: reading the file, they
    open it once instead of once per query. Nested batches join the outer one."""
    if getattr(_batch, "reader", None) is not None or os.environ.get("CONFLICTRADAR_LAKE"):
        yield
        return
    try:
        s = settings()
    except ConfigError:  # the page says so itself
        yield
        return
    with reading_batch(s, patience_s=LOCK_WAIT_S, fresh=FRESH) as r:
        _batch.reader = (s.db, r)
        try:
            yield
        finally:
            _batch.reader = None


def reader(s: Settings, fresh: bool = FRESH) -> Reader:
    """The reader for `s.db`: this run's batch reader, if one is open. `fresh`: a read a user
    asked for this moment (the SQL page's Run) has a running watcher first read the lines it
    keeps for a batch, as `conflictradar sql` does; one query costs it at most one look."""
    held = getattr(_batch, "reader", None)
    if held is not None and held[0] == s.db and fresh == FRESH:
        return held[1]
    if os.environ.get("CONFLICTRADAR_LAKE"):  # `dashboard --lake DIR`: s.db is the lake
        from conflictradar.ingest.lake.reader import lake_reader

        return lake_reader(s.db, s.sql)
    # A page should say "busy, retrying" within seconds rather than hang on a writer's lock
    # (the page itself retries every refresh).
    return open_reader(s, patience_s=LOCK_WAIT_S, fresh=fresh)


# A database's status as last read, with the file fingerprint it was read under.
_known: dict[str, tuple[tuple[object, ...], float, DataStatus]] = {}
_known_lock = threading.Lock()


def fingerprint(db: Path) -> tuple[object, ...] | None:
    """What any commit changes: the file's and its WAL's identity, size and modification time
    (None while there is no file, or it cannot be looked at)."""
    parts: list[object] = []
    for path in (db, db.with_name(db.name + ".wal")):
        try:
            st_ = path.stat()
        except FileNotFoundError:
            parts.append(None)
            continue
        except OSError:
            return None
        parts.append((st_.st_dev, st_.st_ino, st_.st_size, st_.st_mtime_ns))
    return tuple(parts) if parts[0] is not None else None


def status(s: Settings) -> DataStatus:
    """The version every cached read is keyed by: read again whenever the file (or its WAL) has
    changed since, and at least every STATUS_MAX_AGE_S. A page view of unchanged data thus opens
    neither the file nor a connection to the watcher (its reads come from the cache)."""
    if os.environ.get("CONFLICTRADAR_LAKE"):  # a lake is many files: always asked
        return reads.data_status(reader(s))
    key = str(s.db.resolve())
    seen = fingerprint(s.db)  # before the read: a commit during it is caught next time
    now = time.monotonic()
    with _known_lock:
        held = _known.get(key)
    if seen is not None and held and held[0] == seen and now - held[1] < STATUS_MAX_AGE_S:
        return held[2]
    out = reads.data_status(reader(s))
    if seen is not None:
        with _known_lock:
            _known[key] = (seen, now, out)
    return out


@st.cache_data(ttl=REFRESH_S, show_spinner=False, max_entries=1024)
def _cached(
    name: str,
    db: str,
    config: str,
    version: tuple[object, ...],
    args: tuple[object, ...],
    kwargs: tuple[tuple[str, object], ...],
) -> object:
    module, _, function = name.rpartition(".")
    read = getattr(READ_MODULES[module], function)
    out = read(reader(settings()), *args, **dict(kwargs))
    if hasattr(_spent, "reads"):
        _spent.reads[1] += 1
    return out


def fetch(
    read: Callable[Concatenate[Reader, P], T],
    version: tuple[object, ...],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`read(reader, *args)` from ingest.reads or ingest.alert_reads, cached per data version and refresh period."""
    s = settings()
    key = (str(s.db.resolve()), str(s.config_path))
    name = f"{read.__module__}.{read.__name__}"
    started = time.perf_counter()
    out = _cached(name, *key, version, tuple(args), tuple(sorted(kwargs.items())))
    if hasattr(_spent, "reads"):
        _spent.reads[0] += 1
        _spent.reads[2] += time.perf_counter() - started
    return out  # type: ignore[return-value]


def start_timing() -> None:
    """Count this run's reads from here on (with TIMINGS_ENV set)."""
    if os.environ.get(TIMINGS_ENV):
        _spent.reads = [0, 0, 0.0]
        _spent.started = time.perf_counter()


def record_timing(page: str) -> None:
    """Append this run's script and read times to TIMINGS_ENV's file."""
    path = os.environ.get(TIMINGS_ENV)
    if not path or not hasattr(_spent, "reads"):
        return
    count, misses, reads_s = _spent.reads
    line = {"at": time.time(), "page": page, "script_s": time.perf_counter() - _spent.started,
            "reads": count, "misses": misses, "reads_s": reads_s}  # fmt: skip
    del _spent.reads
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
