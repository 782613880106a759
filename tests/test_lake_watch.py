"""`watch --lake`: real `conflictradar watch` processes seal complete hours into a lake, `sql
--lake` sees them, a restart writes nothing twice, late lines re-seal their hour, and a second
host's hour settles the causes of the window across hosts."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from conflictradar.cli import main
from conflictradar.dashboard.server import stop_process
from conflictradar.ingest.lake import layout
from conflictradar.ingest.lake.manifest import load_units
from conflictradar.ingest.lake.seal import HourCount, due_hours
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store
from tests.watcher import wait_for

HOUR = datetime(2025, 6, 2, 10, tzinfo=UTC)
KEY = "2025-06-02T10"


def write(path: Path, rows: list[tuple[datetime, str, str, int]]) -> None:
    """Append nginx combined lines: (time, client, request, status)."""
    with path.open("a") as fh:
        for ts, client, request, status in rows:
            fh.write(f'{client} - - [{ts:%d/%b/%Y:%H:%M:%S} +0000] "{request} HTTP/1.1" {status}'
                     ' 12 "-" "k6"\n')  # fmt: skip


def traffic(first: int, count: int, client: str) -> list[tuple[datetime, str, str, int]]:
    """Lines every 5 s from `first` (seconds after 10:00): GETs, PUTs, every 9th a 409."""
    out = []
    for i in range(first, first + count):
        ts = HOUR + timedelta(seconds=5 * i)
        method = "PUT" if i % 3 == 0 else "GET"
        out.append((ts, client, f"{method} /orders/{i % 40}", 409 if i % 9 == 0 else 200))
    return out


def start(db: Path, logs: Path, lake: Path, host: str, err: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db), "--lake",
         str(lake), "--lake-host", host, "--lake-lateness", "60", "--no-alerts", "-v"],
        stdout=subprocess.DEVNULL, stderr=err.open("a"), text=True,
    )  # fmt: skip


def units_of(lake: Path, host: str) -> list[tuple[str, int]]:
    if not (lake / layout.UNITS).is_dir():
        return []
    return [(u.hours[0], u.parsed) for u in load_units(lake) if u.source == f"watch-{host}"]


def files(lake: Path) -> dict[str, int]:
    return {
        p.relative_to(lake).as_posix(): p.stat().st_mtime_ns
        for p in lake.rglob("*")
        if p.is_file() and p.name != "ingest.lock"
    }


def lake_sql(query: str, lake: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["sql", "--lake", str(lake), query, "--format", "csv"]) == 0
    return capsys.readouterr().out


def db_sql(db: Path, query: str) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(query).fetchall()
    finally:
        con.close()
    return "".join(",".join(str(v) for v in r) + "\n" for r in rows)


def test_watch_seals_hours_into_the_lake_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs, lake, db, err = tmp_path / "a", tmp_path / "lake", tmp_path / "a.duckdb", tmp_path / "err"
    logs.mkdir()
    # 10:00-10:50 and a few lines up to 11:02: hour 10 is complete with 60 s of lateness, 11 not.
    write(logs / "access.log", traffic(0, 600, "10.0.0.1") + traffic(720, 25, "10.0.0.1"))
    in_hour = "SELECT count(*), count(*) FILTER (status = 409) FROM requests WHERE hour = 10"
    proc = start(db, logs, lake, "gw-a", err)
    try:
        wait_for(lambda: units_of(lake, "gw-a") == [(KEY, 600)], timeout=90)
    finally:
        stop_process(proc)
    assert lake_sql(in_hour, lake, capsys).splitlines()[1] == "600,67"
    # The hour's 409s are explained in the lake as in the watcher's own database.
    causes = "SELECT cause, count(*) FROM conflicts WHERE ts < '2025-06-02 11:00:00+00' GROUP BY 1"
    ordered = f"SELECT * FROM ({causes}) ORDER BY 1"
    assert lake_sql(ordered, lake, capsys).splitlines()[1:] == db_sql(db, ordered).splitlines()
    assert "gw-a:" in lake_sql("SELECT DISTINCT file FROM requests", lake, capsys)

    # Restarted: the hour is in the lake already; nothing is written again.
    before = files(lake)
    looks = err.read_text().count('"lake look"')
    proc = start(db, logs, lake, "gw-a", err)
    try:
        wait_for(lambda: err.read_text().count('"lake look"') > looks, timeout=90)
        assert files(lake) == before

        # Late lines of the sealed hour (and newer ones): the hour is sealed again, once.
        write(logs / "access.log", [(HOUR + timedelta(minutes=30), "10.0.0.9", "GET /late", 200)]
              * 5 + traffic(745, 5, "10.0.0.1"))  # fmt: skip
        wait_for(lambda: units_of(lake, "gw-a") == [(KEY, 605)], timeout=90)
    finally:
        stop_process(proc)
    assert lake_sql(in_hour, lake, capsys).splitlines()[1] == "605,67"
    assert not [f for f in files(lake) if f.startswith("requests/") and "-000001748858400-" in f
                and f.endswith("-000001748859000.parquet")]  # fmt: skip
    assert not list(layout.temp_files(lake))


def test_a_second_host_settles_the_causes_of_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # Host a: a client's successful PUT; host b: another client's PUT of the same order two
    # seconds later, refused. Only with both hosts is b's 409 a lost race.
    race = HOUR + timedelta(minutes=20)
    won = (race, "10.0.0.7", "PUT /orders/777", 200)
    lost = (race + timedelta(seconds=2), "10.0.1.8", "PUT /orders/777", 409)
    write(a / "access.log", [*traffic(0, 600, "10.0.0.1"), won, *traffic(720, 25, "10.0.0.1")])
    write(b / "access.log", [*traffic(1, 600, "10.0.1.1"), lost, *traffic(721, 25, "10.0.1.1")])
    one = tmp_path / "one.duckdb"
    with Store.open(one) as store:
        Ingester(store, Settings(db=one)).ingest(expand_paths([str(a), str(b)]))
    err = tmp_path / "err"
    for host, logs in (("gw-a", a), ("gw-b", b)):
        proc = start(tmp_path / f"{host}.duckdb", logs, lake, host, err)
        try:
            wait_for(lambda host=host: [k for k, _ in units_of(lake, host)] == [KEY], timeout=90)  # type: ignore[misc]
        finally:
            stop_process(proc)
    race_cause = "SELECT cause FROM conflicts WHERE path = '/orders/777'"
    alone = db_sql(tmp_path / "gw-b.duckdb", race_cause)
    together = db_sql(one, race_cause)
    assert together == "concurrent_update\n" != alone
    assert lake_sql(race_cause, lake, capsys).splitlines()[1:] == ["concurrent_update"]
    # Every cause of the hour, across both hosts, as one machine with both logs gives it.
    causes = (
        "SELECT cause, count(*) FROM conflicts WHERE ts < '2025-06-02 11:00:00+00'"
        " GROUP BY 1 ORDER BY 1"
    )
    assert lake_sql(causes, lake, capsys).splitlines()[1:] == db_sql(one, causes).splitlines()


def test_which_hours_are_due() -> None:
    """Complete = the newest line is past the hour's end plus the allowance; on a quiet host,
    the wall clock is. Sealed hours are due again only with more rows than were sealed."""
    ten = int(HOUR.timestamp()) // 3600
    counts = [HourCount(ten, 600), HourCount(ten + 1, 25)]
    lateness = timedelta(seconds=60)
    newest = HOUR + timedelta(hours=1, seconds=59)
    wall = HOUR + timedelta(hours=5)
    assert due_hours(counts, newest, wall, False, lateness, {}) == []
    newest += timedelta(seconds=1)
    assert due_hours(counts, newest, wall, False, lateness, {}) == [counts[0]]
    assert due_hours(counts, newest, wall, False, lateness, {KEY: 600}) == []
    assert due_hours(counts, newest, wall, False, lateness, {KEY: 599}) == [counts[0]]
    assert due_hours(counts, newest, wall, True, lateness, {KEY: 600}) == [counts[1]]
