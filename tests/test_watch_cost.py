"""What a look of the watcher costs: nothing when nothing arrived, one batch and one classification
pass for a burst of small appends, reads sized to what was appended, and the `watch -v` figures."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conflictradar.ingest import tail
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.followed import FdReader
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import ConfigError, load_settings
from conflictradar.ingest.sources import read_blocks
from conflictradar.watch_stats import WatchStats
from tests.test_watch import Harness, write


def _count(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls of Ingester.<name> (the real method still runs)."""
    calls: list[int] = []
    real = getattr(Ingester, name)

    def counted(self: Ingester, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Ingester, name, counted)
    return calls


def _count_classifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count classification passes over a range (in the batch's commit or after it)."""
    calls: list[int] = []
    real = Classifier.classify_range

    def counted(self: Classifier, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, "classify_range", counted)
    return calls


def test_a_burst_of_small_appends_is_one_batch_and_one_classification(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, str(logs))
    log = logs / "access.log"
    write(log, 0, 70)
    h.poll()
    reads = _count(monkeypatch, "ingest_source")
    passes = _count_classifications(monkeypatch)
    for n in range(70, 140):  # a writer flushing every line between two looks
        write(log, n, 1)
    assert h.poll() == 70
    assert (len(reads), len(passes)) == (1, 1)
    assert h.seqs() == list(range(140))
    # Every 409 (each 7th line) is explained, as one pass over the burst's range explains it.
    got = h.store.con.execute("SELECT count(*), count(cause) FROM conflicts").fetchone()
    assert got == (20, 20)
    assert h.store.con.execute("SELECT count(*) FROM classify_pending").fetchone() == (0,)
    h.close()


def test_a_look_that_finds_nothing_new_reads_and_classifies_nothing(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, str(logs))
    log = logs / "access.log"
    write(log, 0, 30)
    h.poll()
    reads = _count(monkeypatch, "ingest_source")
    passes = _count_classifications(monkeypatch)
    for _ in range(5):
        assert h.poll() == 0
        assert h.tailer.poll_once(scan=False) == 0
    assert (len(reads), len(passes)) == (0, 0)
    write(log, 30, 3)  # and the next append is read at the next look, scan or not
    assert h.tailer.poll_once(scan=False) == 3
    h.close()


def test_reads_stop_at_the_size_the_look_began_with(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\n")
    fd = os.open(log, os.O_RDONLY)
    try:
        reader = FdReader(fd, limit=4)
        with log.open("ab") as fh:  # the writer appends while the look reads
            fh.write(b"three\n")
        blocks = list(read_blocks(reader, 0, block_bytes=32 << 20, max_line_bytes=1 << 20,
                                  take_unterminated=False))  # fmt: skip
        assert [bytes(b.data) for b in blocks] == [b"one\n"]
        assert reader.remaining() == 0
        unlimited = FdReader(fd)
        blocks = list(read_blocks(unlimited, 4, block_bytes=32 << 20, max_line_bytes=1 << 20,
                                  take_unterminated=False))  # fmt: skip
        assert [(bytes(b.data), b.start, b.end) for b in blocks] == [(b"two\nthree\n", 4, 14)]
        # The read was sized to the 10 bytes there were, not to a 32 MB block.
        assert len(blocks[0].data) == 10
    finally:
        os.close(fd)


def test_stats_report_lines_batches_latency_cpu_and_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = WatchStats(every_s=3600)
    assert stats.tick() is None  # not a minute yet
    stats.batch(100, 0.020)
    stats.batch(0, 5.0)  # a look that read nothing is no batch
    stats.batch(300, 0.040)
    stats.alerts(0.050, 0.030)
    stats.alerts(0.020, 0.010)
    stats.every_s = 0.0
    stats.since -= 10.0  # the interval: 10 s
    with caplog.at_level(logging.INFO, logger="conflictradar.watch"):
        out = stats.tick()
    assert out is not None
    assert (out["lines"], out["batches"]) == (400, 2)
    assert out["batch_ms_p50"] in (20.0, 40.0)
    assert out["batch_ms_max"] == 40.0
    assert isinstance(out["cpu_pct"], float) and out["cpu_pct"] >= 0
    assert isinstance(out["rss_mb"], float) and out["rss_mb"] > 10
    assert float(str(out["lines_per_s"])) > 0
    assert (out["alert_evaluations"], out["alert_ms_max"]) == (2, 50.0)
    assert out["alert_cpu_pct"] == 0.4  # 40 ms of the evaluations' CPU in 10 s
    assert [r.getMessage() for r in caplog.records] == ["stats"]
    # The next interval starts empty.
    after = stats.tick()
    assert after is not None and (after["lines"], after["batches"]) == (0, 0)
    assert "alert_evaluations" not in after  # none in this interval: no alert figures


def test_a_look_with_no_409_in_reach_skips_the_classification_query(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Successes after every 409's windows change no cause: the look stores them without the
    classification query, and a later 409 is still explained from them."""
    h = Harness(tmp_path, str(logs))
    log = logs / "access.log"
    line = '10.0.0.{c} - - [02/Jun/2025:10:{m:02d}:{s:02d} +0000] "PUT /orders/{n} HTTP/1.1" {st} 5 "-" "c"\n'
    log.write_text("".join(line.format(c=n, m=0, s=n, n=n, st=409) for n in range(5)))
    h.poll()
    before = h.store.con.execute("SELECT * FROM conflicts ORDER BY line").fetchall()
    minutes = h.store.con.execute("SELECT * FROM conflict_minutes ORDER BY ALL").fetchall()
    assert len(before) == 5
    queries: list[int] = []  # classification queries run (their parameters are asked for)
    real = Classifier.params

    def counted(self: Classifier, *args: Any, **kwargs: Any) -> dict[str, object]:
        if len(args) > 2:
            queries.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, "params", counted)
    with log.open("a") as fh:  # five minutes later: beyond every window of those 409s
        fh.write("".join(line.format(c=9, m=5, s=n, n=100, st=200) for n in range(3)))
    assert h.poll() == 3
    assert queries == []
    assert h.store.con.execute("SELECT * FROM conflicts ORDER BY line").fetchall() == before
    assert h.store.con.execute("SELECT * FROM conflict_minutes ORDER BY ALL").fetchall() == minutes
    with log.open("a") as fh:  # the same client's PUT again: a retry of one that succeeded
        fh.write(line.format(c=9, m=5, s=10, n=100, st=409))
    assert h.poll() == 1
    assert queries == [1]
    got = h.store.con.execute("SELECT cause FROM conflicts WHERE path = '/orders/100'").fetchall()
    assert got == [("retry_after_success",)]
    h.close()


def test_looks_over_trickling_files_are_spaced_to_a_cpu_budget() -> None:
    """A file that brings its lines in bulk keeps the 0.8 s pace whatever the look cost (its
    latency matters, and its cost is its lines); several files that trickle a few lines each are looked
    at further apart, so their fixed toll stays under LOOK_BUDGET of a core, up to MAX_LOOK_S."""
    busy = tail.look_pace(0.5, lines=800, files=1)
    assert busy == tail.LOOK_EVERY_S
    assert tail.look_pace(0.5, lines=800, files=4) == tail.LOOK_EVERY_S
    # One file keeps the pace even when it trickles: its toll is bounded, its latency matters.
    assert tail.look_pace(0.5, lines=12, files=1) == tail.LOOK_EVERY_S
    assert tail.look_pace(0.0, lines=0, files=0) == tail.LOOK_EVERY_S  # nothing read
    cheap = tail.look_pace(0.01, lines=8, files=8)
    assert cheap == tail.LOOK_EVERY_S  # cheap enough at the fastest pace
    toll = 0.06  # four small files, ~15 ms each
    spaced = tail.look_pace(toll, lines=8, files=4)
    assert tail.LOOK_EVERY_S < spaced < tail.MAX_LOOK_S
    assert toll / spaced == pytest.approx(tail.LOOK_BUDGET)
    assert tail.look_pace(5.0, lines=16, files=8) == tail.MAX_LOOK_S


def test_a_cpu_budget_spaces_every_look_to_its_share_of_a_core() -> None:
    """`[watch] cpu_budget`: what a look cost the process, over the budget, is the time from its
    start to the next look's; from LOOK_EVERY_S up to MAX_LOOK_S. None: the 0.8 s pace."""
    assert tail.budget_pace(0.5, 0.0) == tail.LOOK_EVERY_S
    assert tail.budget_pace(0.06, 0.03) == pytest.approx(2.0)
    assert tail.budget_pace(0.001, 0.03) == tail.LOOK_EVERY_S
    assert tail.budget_pace(1.0, 0.03) == tail.MAX_LOOK_S


@pytest.mark.parametrize(("value", "share"), [('"3%"', 0.03), ("2.5", 0.025), ('" 10 % "', 0.1),
                                              ("0", 0.0)])  # fmt: skip
def test_cpu_budget_setting(tmp_path: Path, value: str, share: float) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[watch]\ncpu_budget = {value}\n")
    assert load_settings(config=cfg, db=tmp_path / "x.duckdb", env={}).watch.cpu_budget == share


@pytest.mark.parametrize("value", ['"lots"', "150", "-1", "true", '"nan"', '"3 cores"'])
def test_cpu_budget_setting_refuses_what_is_not_a_share(tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[watch]\ncpu_budget = {value}\n")
    with pytest.raises(ConfigError, match=r"^watch.cpu_budget = .* is not a share of one core"):
        load_settings(config=cfg, db=tmp_path / "x.duckdb", env={})


def test_the_follow_loop_keeps_to_its_cpu_budget_and_loses_no_line(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real follow loop under a budget far below what a look costs: looks come MAX_LOOK_S
    apart (shortened here), every line is still read, once."""
    monkeypatch.setattr(tail, "MAX_LOOK_S", 1.5)
    log = logs / "access.log"
    write(log, 0, 50)
    h = Harness(tmp_path, str(logs))
    looks: list[float] = []  # when each look began
    poll_once = h.tailer.poll_once

    def timed_poll(scan: bool = True, fresh: bool = True) -> int:
        looks.append(time.monotonic())
        return poll_once(scan, fresh)

    h.tailer.poll_once = timed_poll  # type: ignore[method-assign]
    h.tailer.cpu_budget = 1e-6
    stop = threading.Event()
    loop = threading.Thread(target=h.tailer.run, args=(stop,))
    loop.start()
    written = 50
    try:
        deadline = time.monotonic() + 30
        while len(looks) < 4 and time.monotonic() < deadline:
            write(log, written, 10)  # appended between looks: each look reads a backlog
            written += 10
            time.sleep(0.5)
    finally:
        stop.set()
        loop.join(timeout=30)
    assert len(looks) >= 4
    gaps = [b - a for a, b in itertools.pairwise(looks)]
    assert min(gaps) >= 1.5 - 0.05, gaps  # not the 0.8 s pace
    h.tailer.cpu_budget = 0.0
    h.poll()
    assert h.seqs() == list(range(written))
    h.close()


def test_json_expressions_are_built_once_per_format_and_key_set(logs: Path) -> None:
    """The JSON formats' expression trees are cached, per local zone too: the same lines read in
    another `[ingest] timezone` still get that zone's times."""
    from conflictradar.ingest.formats import ParserState, get_format
    from conflictradar.ingest.formats.jsonrecords import _built
    from conflictradar.ingest.timestamps import local_zone

    fmt = get_format("json", ())
    line = '{"time": "2025-06-02T08:00:00", "method": "PUT", "path": "/a", "status": 409}'
    lines = pl.Series([line, line])
    _built.cache_clear()
    first = fmt.parse(lines, ParserState())
    hits = _built.cache_info().hits
    again = fmt.parse(lines, ParserState())
    assert _built.cache_info().hits > hits
    assert first.equals(again)
    with local_zone("Europe/Berlin"):
        berlin = fmt.parse(lines, ParserState())
    assert berlin["ts"][0] == first["ts"][0] - timedelta(hours=2)


def test_alerts_are_evaluated_every_10_s_and_sooner_when_409s_surge() -> None:
    from conflictradar.watch import AlertPace

    pace = AlertPace()
    assert pace.due(0.0, 0)  # the first look evaluates
    # Steady 409 traffic (4 a look, a look every 0.8 s): only every EVERY_S.
    t, fired = 0.0, []
    for _ in range(60):
        t += 0.8
        if pace.due(t, 4):
            fired.append(t)
    assert fired and all(b - a >= AlertPace.EVERY_S - 0.8 for a, b in itertools.pairwise(fired))
    # A surge (10x) is judged within GAP_S, not up to EVERY_S later.
    surge_at = t + 0.8
    t = surge_at
    while not pace.due(t, 40):
        t += 0.8
    assert t - surge_at <= AlertPace.GAP_S + 0.8
    # A burst on a quiet log is judged at once (once GAP_S has passed since the last one).
    quiet = AlertPace()
    assert quiet.due(0.0, 0)
    assert not quiet.due(5.0, 0)
    assert not quiet.due(5.8, 3)  # fewer than surge.SURGE_MIN
    assert quiet.due(6.6, 12)
