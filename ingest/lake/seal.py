"""`watch --lake DIR`: a live watcher appends its sealed hours to a lake.

The watcher keeps its own database (its reads, alerts and the dashboard stay local and live). An
hour is *sealed* once the newest timestamp the watcher has stored is past the hour's end plus the
lateness allowance (`--lake-lateness`, 5 minutes by default), or, on a host gone quiet, once the
wall clock is and no line has arrived for that long. The sealer then writes the hour's rows as
one unit of the lake, exactly as `ingest --lake` writes a byte range: the `requests`, per-minute
`request_minutes` and `conflict_lines` files under deterministic names, each renamed into place
whole, then the unit's manifest record (the commit). Then every hour whose inputs changed (this
hour and the hours beside it) is explained again from all hosts' units in the lake
(`tasks.classify_hours`, run here), so cross-host causes settle as the hosts' hours come in.

A unit's name is the host's source id, the hour and the number of rows: after a restart the
sealer finds the record of every hour it sealed and writes nothing again. Lines of a sealed hour
that arrive later still (beyond the allowance) make the hour's count grow: the hour is sealed
again under its new count, the new record is committed, and the old record and files are
removed. Rows keep their host in `file` (`HOST:/var/log/...`): every host has an access.log.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from conflictradar.ingest.database import REQUEST_COLUMNS
from conflictradar.ingest.errors import ConflictRadarError
from conflictradar.ingest.lake import layout
from conflictradar.ingest.lake.cluster import hour_tasks, lake_lock
from conflictradar.ingest.lake.manifest import Unit, commit_unit, load_units, unit_record
from conflictradar.ingest.lake.tasks import classify_hours
from conflictradar.ingest.rows import minute_rollup
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store

log = logging.getLogger("conflictradar.watch.lake")

LATENESS_S = 300.0
SEAL_EVERY_S = 10.0
# Sealed hours are compared with the database (for late lines) this far back from the newest row.
RECHECK = timedelta(hours=24)
HOUR_US = 3_600_000_000
WATCH_PATH = "watch:"  # a unit's `path` for a watcher's hour: never a file to match by content


def host_source(host: str) -> str:
    """The source id of a watcher's units: `watch-<host>`, safe in a hive path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", host).strip("-.") or "host"
    return f"watch-{name}"


def default_host() -> str:
    return socket.gethostname()


def _hour(index: int) -> datetime:
    return datetime.fromtimestamp(index * 3600, UTC)


@dataclass(frozen=True)
class HourCount:
    index: int  # hours since the epoch
    rows: int


def hour_counts(con: Any, since: datetime | None) -> tuple[list[HourCount], datetime | None]:
    """Rows per hour in the database (from `since` on), and the newest timestamp."""
    where = "WHERE ts >= $since" if since is not None else ""
    rows = con.execute(
        f"SELECT epoch_us(ts) // {HOUR_US} AS h, count(*), max(ts) FROM requests {where}"
        " GROUP BY 1 ORDER BY 1",
        {"since": since} if since is not None else {},
    ).fetchall()
    newest = max((r[2] for r in rows), default=None)
    return [HourCount(int(h), int(n)) for h, n, _ in rows if h is not None], newest


def _frame(con: Any, sql: str, params: list[object]) -> pl.DataFrame:
    out = pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
    assert isinstance(out, pl.DataFrame)
    return out


def seal_hour(con: Any, lake: Path, sid: str, host: str, index: int,
              folds: tuple[tuple[str, int], ...]) -> Unit:  # fmt: skip
    """Write one hour of the database as a unit of the lake (files, then the record)."""
    lo, hi = _hour(index), _hour(index + 1)
    cols = ", ".join(REQUEST_COLUMNS)
    con.execute("BEGIN TRANSACTION")  # one snapshot: a batch committed meanwhile is in neither
    try:
        requests = _frame(
            con, f"SELECT {cols} FROM requests WHERE ts >= ? AND ts < ? ORDER BY ts, file, line",
            [lo, hi],
        )  # fmt: skip
        lines = _frame(
            con,
            "SELECT file, line, ts, raw FROM conflict_lines WHERE ts >= ? AND ts < ?"
            " ORDER BY ts, file, line",
            [lo, hi],
        )
    finally:
        con.execute("ROLLBACK")
    qualified = (pl.lit(f"{host}:") + pl.col("file")).alias("file")
    utc = pl.col("ts").dt.convert_time_zone("UTC")
    requests = requests.with_columns(qualified, utc)
    lines = lines.with_columns(qualified, utc)
    start = index * 3600
    end = start + requests.height  # the count is part of the name: a late line makes a new one
    files = []
    for table, frame in (
        ("requests", requests),
        ("request_minutes", minute_rollup(requests)),
        ("conflict_lines", lines),
    ):
        if frame.height:
            rel = layout.unit_file(table, lo, sid, start, end)
            layout.write_parquet(frame, lake / rel)
            files.append(rel)
    ts = requests["ts"]
    unit = Unit(
        source=sid, path=f"{WATCH_PATH}{host}", dev=0, inode=0, compressed=False, fp_len=0,
        fp_hash="-", start=start, end=end, first_line=1, lines=requests.height,
        parsed=requests.height, rejected=0, skipped=0,
        conflicts=lines.height, format="watch", format_spec="watch", envelope=None,
        hours=(layout.hour_key(lo),), files=tuple(files), folds=folds,
        time_range=(ts.min().isoformat(), ts.max().isoformat()),  # type: ignore[union-attr]
    )  # fmt: skip
    commit_unit(lake, unit)
    return unit


def _retire(lake: Path, old: Unit, new: Unit) -> None:
    """Remove a superseded unit: its record first (readers stop naming its files), then them."""
    unit_record(lake, old).unlink(missing_ok=True)
    for rel in set(old.files) - set(new.files):
        (lake / rel).unlink(missing_ok=True)


def _merge_folds(lake: Path, folds: tuple[tuple[str, int], ...]) -> None:
    saved = lake / layout.FOLDS
    known = [[str(p), int(k)] for p, k in layout.read_json(saved)] if saved.exists() else []
    merged = known + [[p, k] for p, k in folds if [p, k] not in known]
    if merged != known:
        layout.write_json(merged, saved)


def sealed_hours(lake: Path, sid: str) -> dict[str, Unit]:
    """The units this host has in the lake, by hour key."""
    return {u.hours[0]: u for u in load_units(lake) if u.source == sid and u.hours}


def due_hours(counts: list[HourCount], newest: datetime, wall: datetime, idle: bool,
              lateness: timedelta, sealed: dict[str, int]) -> list[HourCount]:  # fmt: skip
    """Complete hours not in the lake yet, or with more rows than were sealed (late lines)."""
    out = []
    for c in counts:
        end = _hour(c.index + 1)
        complete = end + lateness <= newest or (idle and end + lateness <= wall)
        if complete and c.rows > sealed.get(layout.hour_key(_hour(c.index)), 0):
            out.append(c)
    return out


def seal_hours(con: Any, lake: Path, settings: Settings, host: str,
               hours: list[HourCount]) -> tuple[dict[str, Unit], int]:  # fmt: skip
    """Seal `hours` into the lake, then explain again every hour whose inputs changed (these,
    the hours beside them, whatever host's units they hold); (this host's units, hours
    explained). Raises ClusterError while another writer holds the lake."""
    sid = host_source(host)
    folds = tuple((str(p), int(k)) for p, k in
                  con.execute("SELECT prefix, position FROM endpoint_folds").fetchall())  # fmt: skip
    lake.mkdir(parents=True, exist_ok=True)
    with lake_lock(lake):
        mine = sealed_hours(lake, sid)
        for c in hours:
            key = layout.hour_key(_hour(c.index))
            old = mine.get(key)
            unit = seal_hour(con, lake, sid, host, c.index, folds)
            if old is not None and old.name != unit.name:
                _retire(lake, old, unit)
            mine[key] = unit
        _merge_folds(lake, folds)
        explained = 0
        for task in hour_tasks(lake, load_units(lake)):
            classify_hours(task, settings)
            explained += len(task.hours)
    return mine, explained


@dataclass
class LakeSealer:
    """The `watch` extra (`conflictradar.watch.WatchExtra`) that seals hours into a lake, on a
    thread of its own: a look once the first poll is stored, then at most every SEAL_EVERY_S
    while lines arrive, and on a quiet host once the wall clock passes the end of its newest
    hour plus the allowance."""

    lake: Path
    settings: Settings
    host: str
    lateness_s: float = LATENESS_S
    every_s: float = SEAL_EVERY_S
    _store: Store | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _fresh: bool = True
    _last_lines: float = field(default_factory=time.monotonic)
    _sealed: dict[str, int] | None = None  # rows per hour key this host has in the lake
    _due: datetime | None = None  # when a quiet host's newest hour is complete
    _newest: datetime | None = None  # the newest row seen
    _looked: bool = False
    _last_look: float = 0.0
    _wake: threading.Event = field(default_factory=threading.Event)

    def start(self, store: Store, ingester: object, stop: threading.Event) -> None:
        self._store = store
        self._thread = threading.Thread(target=self._run, name="lake-sealer", daemon=True)
        self._thread.start()

    def on_batch(self, lines: int) -> None:
        """Called after every poll: the first (the catch-up read at start) and then any batch
        with lines at most every `every_s` wake the sealer at once."""
        if lines:
            self._fresh = True
            self._last_lines = time.monotonic()
        if not self._looked or (lines and time.monotonic() - self._last_look >= self.every_s):
            self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(60.0)

    def _run(self) -> None:
        self._wake.wait()  # the first poll's catch-up is in the database
        while not self._stop.is_set():
            self._wake.clear()
            idle = time.monotonic() - self._last_lines >= self.lateness_s
            wall = datetime.now(UTC)
            if self._fresh or (idle and self._due is not None and wall >= self._due):
                self._fresh = False
                self._last_look = time.monotonic()
                first, self._looked = not self._looked, True
                try:
                    keys = self.look(idle, wall)
                    if keys or first:
                        log.info("lake look", extra={"lake": str(self.lake), "sealed": keys})
                except ConflictRadarError as exc:  # another writer has the lake: next time
                    log.warning("lake busy", extra={"lake": str(self.lake), "error": str(exc)})
                    self._fresh = True
                except Exception as exc:  # sealing trouble must never stop ingest
                    log.error("lake seal failed", extra={"lake": str(self.lake), "error": str(exc)})
                    self._fresh = True
            self._wake.wait(self.every_s)

    def look(self, idle: bool, wall: datetime) -> list[str]:
        """Seal what is due; the hour keys written."""
        assert self._store is not None
        lateness = timedelta(seconds=self.lateness_s)
        con = self._store.con.cursor()
        try:
            if self._sealed is None:
                units = sealed_hours(self.lake, host_source(self.host))
                self._sealed = {k: u.parsed for k, u in units.items()}
            # Hours sealed long ago are not compared again (a whole-table scan every look).
            since = self._newest - RECHECK if self._newest is not None else None
            counts, newest = hour_counts(con, since)
            if newest is None:
                return []
            self._newest = newest
            self._due = _hour(int(newest.timestamp()) // 3600 + 1) + lateness
            due = due_hours(counts, newest, wall, idle, lateness, self._sealed)
            if not due:
                return []
            mine, explained = seal_hours(con, self.lake, self.settings, self.host, due)
            self._sealed = {k: u.parsed for k, u in mine.items()}
            keys = [layout.hour_key(_hour(c.index)) for c in due]
            log.info("sealed into the lake", extra={"lake": str(self.lake), "hours": keys,
                                                    "explained": explained})  # fmt: skip
            return keys
        finally:
            con.close()
