"""`[watch] batch_wait`: small appends wait to be read together (a look that reads costs about
the same for 80 lines as for 800), yet no reader, burst, rotation or stop ever sees them late."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conflictradar.dashboard.server import stop_process
from conflictradar.ingest import batching, surge, tail
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.settings import ConfigError, load_settings
from conflictradar.watch import AlertPace
from tests.test_dashboard_sql import run_sql, sql_page
from tests.test_watch import LINE, Harness, write
from tests.watcher import wait_for


def _batching(tmp_path: Path, logs: Path, wait_s: float) -> Harness:
    """A hand-driven Tailer that has read the first 50 lines of logs/access.log."""
    write(logs / "access.log", 0, 50)
    h = Harness(tmp_path, str(logs))
    h.tailer.batcher.wait_s = wait_s
    assert h.tailer.poll_once(fresh=False) == 50  # a file never read is read at once
    return h


def _count(h: Harness) -> int:
    return int(h.store.con.cursor().execute("SELECT count(*) FROM requests").fetchone()[0])


def test_small_appends_wait_for_a_batch_then_are_read_together(tmp_path: Path, logs: Path) -> None:
    h = _batching(tmp_path, logs, wait_s=1.0)
    write(logs / "access.log", 50, 10)
    assert h.tailer.poll_once(fresh=False) == 0
    assert h.tailer.last_waited and _count(h) == 50
    write(logs / "access.log", 60, 10)
    assert h.tailer.poll_once(fresh=False) == 0  # still under batch_wait since the first
    time.sleep(1.05)
    assert h.tailer.poll_once(fresh=False) == 20  # both appends, one batch
    assert not h.tailer.last_waited
    assert h.seqs() == list(range(70))
    h.close()


def test_no_batch_wait_reads_at_every_look(tmp_path: Path, logs: Path) -> None:
    h = _batching(tmp_path, logs, wait_s=0.0)
    write(logs / "access.log", 50, 3)
    assert h.tailer.poll_once(fresh=False) == 3
    h.close()


def test_a_full_batch_a_burst_of_409s_and_a_truncation_are_read_at_once(
    tmp_path: Path, logs: Path
) -> None:
    log = logs / "access.log"
    h = _batching(tmp_path, logs, wait_s=60.0)
    # A burst of 409s on a quiet log is explained (and alerted on) within a look.
    n = 50
    with log.open("a") as fh:
        for k in range(n, n + surge.SURGE_MIN):
            fh.write(LINE.format(c=k % 200, s=k % 60, n=k, st=409))
    assert h.tailer.poll_once(fresh=False) == surge.SURGE_MIN
    n += surge.SURGE_MIN
    # BATCH_BYTES waiting: a busy file is read at every look.
    line_bytes = len(LINE.format(c=1, s=1, n=100, st=200))
    many = batching.BATCH_BYTES // line_bytes + 10
    write(log, n, many)
    assert h.tailer.poll_once(fresh=False) == many
    n += many
    # A few lines wait; then the file is truncated (copytruncate) and written again: read now.
    write(log, n, 5)
    assert h.tailer.poll_once(fresh=False) == 0
    with log.open("r+") as fh:
        fh.truncate(0)
    write(log, n + 5, 3)
    assert h.tailer.poll_once(fresh=False) > 0
    assert h.seqs()[-3:] == [n + 5, n + 6, n + 7]
    h.close()


_OK = '10.0.0.1 - - [02/Jun/2025:10:00:00 +0000] "GET /items HTTP/1.1" 200 5 "-" "{agent}"\n'


def _ok_lines(path: Path, size: int) -> int:
    """Append at least `size` bytes of successes (no "409" anywhere; the file's name as agent,
    so files differ from their first line); returns the lines written."""
    line = _OK.format(agent=path.stem)
    count = -(-size // len(line))
    with path.open("a") as fh:
        fh.write(line * count)
    return count


def test_the_batch_bound_is_per_file_so_a_fleet_of_small_appends_waits(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three files each under BATCH_BYTES wait though together they hold more (a look's toll
    grows with the files it reads, so a sum read a fleet far more often than one file alone);
    one file reaching BATCH_BYTES, or all of them TOTAL_BYTES, is read at once with the rest."""
    files = [logs / name for name in ("edge-a.log", "edge-b.log", "svc.log")]
    first = sum(_ok_lines(f, 1000) for f in files)
    h = Harness(tmp_path, str(logs))
    h.tailer.batcher.wait_s = 60.0
    assert h.tailer.poll_once(fresh=False) == first  # new files: read at once
    before = _count(h)
    each = [_ok_lines(f, int(0.6 * batching.BATCH_BYTES)) for f in files]
    assert 3 * 0.6 * batching.BATCH_BYTES > batching.BATCH_BYTES
    assert h.tailer.poll_once(fresh=False) == 0 and h.tailer.last_waited
    assert _count(h) == before
    more = _ok_lines(files[0], int(0.5 * batching.BATCH_BYTES))  # edge-a.log: over 1 MiB
    assert h.tailer.poll_once(fresh=False) == sum(each) + more  # every file, one look
    assert _count(h) == before + sum(each) + more
    # Many files, each under the bound: TOTAL_BYTES in all is read at once.
    monkeypatch.setattr(batching, "TOTAL_BYTES", 2 * batching.BATCH_BYTES)
    each = [_ok_lines(f, int(0.6 * batching.BATCH_BYTES)) for f in files[:2]]
    assert h.tailer.poll_once(fresh=False) == 0  # 1.2 MiB in all: waits
    each.append(_ok_lines(files[2], int(0.9 * batching.BATCH_BYTES)))  # 2.1 MiB in all
    assert h.tailer.poll_once(fresh=False) == sum(each)
    h.close()


def test_409s_at_their_usual_rate_wait_and_a_surge_does_not(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log that always carries many 409s is read as bursts only until they are its usual
    rate (the last RATE_S); then it waits like any other, and a surge is read at once."""
    monkeypatch.setattr(surge, "RATE_S", 3.0)
    log = logs / "access.log"
    h = _batching(tmp_path, logs, wait_s=0.3)
    n = 50

    def conflicts(count: int) -> None:
        nonlocal n
        with log.open("a") as fh:
            for k in range(n, n + count):
                fh.write(LINE.format(c=k % 200, s=k % 60, n=k, st=409))
        n += count

    reads = []
    for _ in range(12):  # 8 409s every 0.35 s
        time.sleep(0.35)
        conflicts(8)
        reads.append(h.tailer.poll_once(fresh=False))
    assert reads[0] == 8  # nothing usual yet: a burst
    assert 0 in reads[-4:]  # then it waits for batch_wait, like any steady log
    h.tailer.poll_once()  # everything read
    time.sleep(0.35)
    conflicts(60)  # ~7x the usual rate
    assert h.tailer.poll_once(fresh=False) == 60
    assert h.seqs() == list(range(n))
    h.close()


def test_spikes_on_a_quiet_log_are_each_read_at_once(tmp_path: Path, logs: Path) -> None:
    """Spikes of a dozen 409s seconds apart: each is a burst, however many came before it."""
    log = logs / "access.log"
    h = _batching(tmp_path, logs, wait_s=60.0)
    n = 50
    for _ in range(6):
        write(log, n, 5)  # a little other traffic
        n += 5
        assert h.tailer.poll_once(fresh=False) == 0
        time.sleep(0.2)
        with log.open("a") as fh:
            for k in range(n, n + 12):
                fh.write(LINE.format(c=k % 200, s=k % 60, n=k, st=409))
        n += 12
        assert h.tailer.poll_once(fresh=False) == 17
        time.sleep(0.2)
    h.close()


def test_a_new_file_and_a_rotated_file_are_not_kept_waiting(tmp_path: Path, logs: Path) -> None:
    h = _batching(tmp_path, logs, wait_s=60.0)
    write(logs / "access.log", 50, 5)
    assert h.tailer.poll_once(fresh=False) == 0  # waits
    (logs / "access.log").rename(logs / "access.log.1")  # moved away: drained at once
    write(logs / "access.log", 55, 4)  # and the new file is new
    assert h.tailer.poll_once(fresh=False) == 9
    assert h.seqs() == list(range(59))
    h.close()


def test_a_reader_catching_up_sees_every_line_appended_before_it_asked(
    tmp_path: Path, logs: Path
) -> None:
    """The follow loop keeps small appends for a minute, but a reader's `catch_up` (the watcher
    calls it before every served read) has them read first; stopping reads what still waits."""
    h = _batching(tmp_path, logs, wait_s=60.0)
    stop = threading.Event()
    loop = threading.Thread(target=h.tailer.run, args=(stop,))
    loop.start()
    try:
        write(logs / "access.log", 50, 7)
        wait_for(lambda: h.tailer.last_waited, timeout=30)
        assert _count(h) == 50
        time.sleep(tail.FRESH_S)
        h.tailer.catch_up()
        assert _count(h) == 57
        write(logs / "access.log", 57, 4)
        wait_for(lambda: h.tailer.last_waited, timeout=30)
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()
    assert _count(h) == 61  # read on the way out, not left for the next start
    # With the loop gone, a reader does not wait for a look that will not come.
    time.sleep(tail.FRESH_S)
    reader = threading.Thread(target=h.tailer.catch_up, kwargs={"timeout_s": 3600})
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive()
    h.close()


def test_batch_wait_setting(tmp_path: Path) -> None:
    def load(text: str) -> float:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f"[watch]\n{text}\n")
        return load_settings(config=cfg, db=tmp_path / "x.duckdb", env={}).watch.batch_wait_s

    assert load("") == 5.0
    assert load('batch_wait = "2s"') == 2.0
    assert load("batch_wait = 0") == 0.0
    with pytest.raises(ConfigError, match=r"^watch.batch_wait = '2m' is longer than 60 s"):
        load('batch_wait = "2m"')
    with pytest.raises(ConfigError, match=r"^watch.batch_wait = 'soon' is not a duration"):
        load('batch_wait = "soon"')


def test_looks_that_leave_lines_waiting_do_not_lower_the_typical_409_rate() -> None:
    """Steady 409s read in batches every 5 s (looks in between leave them waiting) are steady
    traffic: evaluated every EVERY_S, not at every batch as if each were a surge."""
    pace = AlertPace()
    t, fired = 0.0, []
    for look in range(1, 150):
        t += 0.8
        batch = look % 6 == 0
        if pace.due(t, 24 if batch else 0, read=batch) and t > 20:  # past three batches
            fired.append(t)
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert len(gaps) >= 5 and min(gaps) >= AlertPace.EVERY_S - 0.8, gaps
    # A surge in a batch (10x) is judged at that look, once GAP_S has passed.
    t += AlertPace.GAP_S
    assert pace.due(t, 240, read=True)


def test_a_served_read_sees_lines_the_watcher_keeps_for_a_batch(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `watch` with a minute's batch_wait: a query through it, and one run on the
    dashboard's SQL page, still see every line; the dashboard's pages read what is stored."""
    db, cfg = tmp_path / "w.duckdb", tmp_path / "c.toml"
    cfg.write_text('[watch]\nbatch_wait = "60s"\n')
    write(logs / "access.log", 0, 40)
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db),
         "--config", str(cfg), "--no-alerts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        settings = load_settings(db=db, env={})

        def rows() -> int:
            try:
                return int(open_reader(settings).query("SELECT count(*) FROM requests")[0][0]
                           .as_py())  # fmt: skip
            except Exception:  # not serving yet
                return -1

        wait_for(lambda: rows() == 40, timeout=60.0)
        write(logs / "access.log", 40, 6)
        time.sleep(2.0)  # a few looks, each leaving the 6 lines for a batch
        # A reader content with what is stored (the dashboard's) does not make it read them.
        stored = open_reader(settings, fresh=False)
        assert int(stored.query("SELECT count(*) FROM requests")[0][0].as_py()) == 40
        # The SQL page's Run is a query the user asks for now: it sees them, like `sql`.
        page = run_sql(sql_page(monkeypatch, db), "SELECT count(*) AS n FROM requests")
        assert page.dataframe[0].value["n"][0] == 46, [e.value for e in page.error]
        write(logs / "access.log", 46, 4)
        time.sleep(2.0)
        assert int(stored.query("SELECT count(*) FROM requests")[0][0].as_py()) == 46
        assert rows() == 50
    finally:
        stop_process(proc)
    assert proc.returncode == 0


def test_the_fresh_field_of_a_request_header() -> None:
    from conflictradar.ingest.wire import ProtocolError, encode_request, parse_header

    def header(fresh: bool) -> bytes:
        return encode_request("t", "query", "SELECT 1", None, fresh).split(b"\n")[0] + b"\n"

    assert parse_header(header(True)).fresh
    assert not parse_header(header(False)).fresh
    with pytest.raises(ProtocolError, match="fresh must be true or false"):
        parse_header(b'{"token": "t", "op": "query", "size": 5, "fresh": "no"}\n')


def test_one_surge_rule_for_batches_and_alert_pace() -> None:
    """A surge is at least SURGE_MIN 409s and twice what the usual rate predicts over their span
    (at most RATE_S of it); the batcher and the alert pace both judge by it."""
    assert not surge.surging(surge.SURGE_MIN - 1, 0.0, 1.0)  # too few, however quiet the log
    assert surge.surging(surge.SURGE_MIN, 0.0, 1.0)
    assert not surge.surging(19, 1.0, 10.0)  # 10 expected over 10 s: 19 is not twice that
    assert surge.surging(20, 1.0, 10.0)
    # A long quiet span predicts at most RATE_S worth: a burst after it is still a surge.
    assert surge.surging(int(2 * surge.RATE_S) + 1, 1.0, 10 * surge.RATE_S)
    # The pace evaluates early on a surge that the batcher, on the same counts, reads at once.
    pace = AlertPace()
    for t in range(4):
        pace.due(float(t), 1)  # a typical look: one 409 a second
    assert pace.due(4.0 + AlertPace.GAP_S, 20)  # 20 in ~3 s against 1/s: a surge
