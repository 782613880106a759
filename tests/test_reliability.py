"""One malformed line never stops ingest: impossible timestamps, batches and blocks that fail,
classification ranges that fail, in `ingest` and in `watch`."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from conflictradar.ingest import isolation
from conflictradar.ingest.blocks import RAW_LIMIT, load_context, parse_block
from conflictradar.ingest.classify import Classifier
from conflictradar.ingest.formats import Format, ParserState, get_format
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.rows import Batch, FileRecord
from conflictradar.ingest.schema import STRAY, TOO_EARLY, TOO_LATE, finish
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.sources import inspect
from conflictradar.ingest.store import Store
from conflictradar.ingest.tail import Tailer
from conflictradar.ingest.timestamps import time_spans
from tests.kit import query_db

COMBINED = '10.0.0.{c} - - [20/Nov/{year}:08:00:{s:02d} +0000] "PUT /orders/{n}?seq={n} HTTP/1.1" {st} 5 "-" "c"'
ECS = (
    '{{"@timestamp":"{ts}","http":{{"request":{{"method":"PUT"}},"response":{{"status_code":{st}}}}},'
    '"url":{{"path":"/orders/{n}","query":"seq={n}"}},"source":{{"ip":"10.0.0.{c}"}}}}'
)
TRAEFIK = (
    '{{"ClientHost":"10.0.0.{c}","DownstreamStatus":{st},"RequestMethod":"PUT",'
    '"RequestPath":"/orders/{n}?seq={n}","StartUTC":"{ts}","time":"{ts}"}}'
)
APIGW = (
    '{{"requestId":"r{n}","ip":"10.0.0.{c}","requestTime":"{clf}","httpMethod":"PUT",'
    '"path":"/orders/{n}","status":"{st}","routeKey":"PUT /orders/{{id}}","protocol":"HTTP/1.1",'
    '"responseLength":"5","userAgent":"c","integrationStatus":"{st}"}}'
)
FAR_FUTURE = "9999-12-31T23:59:59.000Z"
NEGATIVE_YEAR = "-2025"


def _line(kind: str, n: int, poison: bool = False) -> str:
    st = 409 if n % 7 == 0 else 200
    c, s = n % 200, n % 60
    iso = FAR_FUTURE if poison else f"2025-11-20T08:{n // 60 % 60:02d}:{s:02d}.000Z"
    if kind == "combined":
        return COMBINED.format(c=c, s=s, n=n, st=st, year=NEGATIVE_YEAR if poison else "2025")
    if kind == "ecs":
        return ECS.format(ts=iso, st=st, n=n, c=c)
    if kind == "traefik":
        return TRAEFIK.format(ts=iso, st=st, n=n, c=c)
    clf = "31/Dec/9999:23:59:59 +0000" if poison else f"20/Nov/2025:08:00:{s:02d} +0000"
    return APIGW.format(clf=clf, st=st, n=n, c=c)


def _write(path: Path, kind: str, count: int, poison_at: tuple[int, ...]) -> None:
    with path.open("w") as fh:
        for n in range(count):
            fh.write(_line(kind, n, n in poison_at) + "\n")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conflictradar", *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_the_rule_rejects_impossible_times_with_a_reason() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    ts = pl.Series(
        [datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
         now + timedelta(hours=23), now + timedelta(days=1, seconds=1),
         datetime(9999, 12, 31, tzinfo=UTC)],
    )  # fmt: skip
    frame = finish(pl.DataFrame({"ts": ts, "status": [200] * 5}), now=now)
    assert frame["_reject"].to_list() == [TOO_EARLY, None, None, TOO_LATE, TOO_LATE]
    # A negative year, as polars parses `20/Nov/-2025`, is before 1970 too.
    parsed = get_format("combined").parse(
        pl.Series([_line("combined", 1, poison=True)]), ParserState()
    )
    assert parsed["_reject"].to_list() == [TOO_EARLY]


@pytest.mark.parametrize("kind", ["combined", "ecs", "traefik", "apigw"])
@pytest.mark.parametrize("size", [1, 50_000])
def test_impossible_times_alone_or_in_large_files_end_in_rejects(
    tmp_path: Path, kind: str, size: int
) -> None:
    db = tmp_path / "db.duckdb"
    log = tmp_path / f"{kind}.log"
    poison = (0,) if size == 1 else (17, size // 2, size - 1)
    _write(log, kind, size, poison)
    # Alone, the line's format is detected (a time refused by the rule does not hide it).
    forced = ["--format", kind] if size > 1 else []
    done = _cli("ingest", str(log), "--db", str(db), *forced, "-q")
    assert "Traceback" not in done.stderr
    # Exit 0 either way: the log was recognised and its bad request kept in `rejects` with the
    # reason (issue 15's "exit 1 when a path yields no request" is for lines not of the format).
    assert done.returncode == 0, done.stderr
    if size == 1:  # nothing stored: one warning sentence says why
        assert done.stderr == (
            f"conflictradar: warning: {log} stored no request: its 1 requests have impossible"
            " times (before 1970 or a day in the future) and are in `rejects`\n"
        )
    else:
        assert done.stderr == ""
    rejects = query_db(db, "SELECT line, reason FROM rejects ORDER BY line")
    assert [line for line, _ in rejects] == [n + 1 for n in poison]
    assert {reason for _, reason in rejects} <= {TOO_EARLY, TOO_LATE}
    assert query_db(db, "SELECT count(*) FROM requests") == [(size - len(poison),)]
    # The database keeps taking new files, and explains their 409s.
    more = tmp_path / "more.log"
    _write(more, "combined", 700, ())
    done = _cli("ingest", str(more), "--db", str(db), "-q")
    assert done.returncode == 0, done.stderr
    assert query_db(db, f"SELECT count(*) FROM conflicts WHERE file = '{more}'") == [(100,)]


def test_a_database_poisoned_by_an_older_version_keeps_working(tmp_path: Path) -> None:
    """A 9999 row and its pending range stored before the rule: every later ingest crashed."""
    db = tmp_path / "db.duckdb"
    with Store.open(db) as store:
        store.con.execute(
            "INSERT INTO requests (ts, file, line, method, path, status)"
            " VALUES ('9999-12-31 23:59:59+00', '/old.log', 1, 'PUT', '/orders/1', 409)"
        )
        store.con.execute(
            "INSERT INTO classify_pending VALUES ('9999-12-31 23:59:59+00', '9999-12-31 23:59:59+00')"
        )
    log = tmp_path / "new.log"
    _write(log, "combined", 700, ())
    done = _cli("ingest", str(log), "--db", str(db), "-q")
    assert done.returncode == 0, done.stderr
    assert query_db(db, "SELECT count(*) FROM classify_pending") == [(0,)]
    assert query_db(db, "SELECT count(*) FROM conflicts") == [(101,)]


def test_watch_stores_the_good_lines_written_after_impossible_ones(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    db = tmp_path / "watch.duckdb"
    access, ecs = logs / "access.log", logs / "ecs.log"
    _write(access, "combined", 10, ())
    _write(ecs, "ecs", 10, ())
    watch = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db), "--no-alerts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    settings = load_settings(db=db, env={})

    def count(sql: str) -> int:
        try:
            return int(open_reader(settings).query(sql)[0][0].as_py())
        except Exception:
            return -1

    def wait_for(sql: str, want: int) -> int:
        deadline = time.monotonic() + 60
        while (got := count(sql)) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        return got

    try:
        assert wait_for("SELECT count(*) FROM requests", 20) == 20
        with access.open("a") as fh:
            fh.write(_line("combined", 10, poison=True) + "\n")
            fh.writelines(_line("combined", n) + "\n" for n in range(11, 30))
        with ecs.open("a") as fh:
            fh.write(_line("ecs", 10, poison=True) + "\n")
            fh.writelines(_line("ecs", n) + "\n" for n in range(11, 30))
        assert wait_for("SELECT count(*) FROM requests", 58) == 58
        assert wait_for("SELECT count(*) FROM rejects", 2) == 2
        # Lines appended later still arrive: the file was not stopped.
        with access.open("a") as fh:
            fh.writelines(_line("combined", n) + "\n" for n in range(30, 40))
        assert wait_for("SELECT count(*) FROM requests", 68) == 68
    finally:
        watch.send_signal(signal.SIGTERM)
        _, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err[-2000:]
    assert "reading failed" not in err
    assert query_db(db, "SELECT line, reason FROM rejects ORDER BY file, line") == [
        (11, TOO_EARLY),
        (11, TOO_LATE),
    ]


def test_a_batch_that_fails_to_commit_is_split_down_to_its_badquery_db(tmp_path: Path) -> None:
    """Rows only the store refuses (a year Python cannot hold, as before the validity rule) are
    found by bisection: they become rejects with their raw text, every other row is stored."""
    db = tmp_path / "db.duckdb"
    log = tmp_path / "a.log"
    _write(log, "combined", 1000, ())
    raw = log.read_text().splitlines()
    bad = [5, 500, 999]
    settings = load_settings(db=db, env={})
    with Store.open(db) as store:
        parsed = parse_block(log.read_bytes(), 0, 1, False, (), get_format("combined"), None,
                             ParserState(), load_context(store, settings), str(log), True)  # fmt: skip
        requests = parsed.requests.with_columns(
            pl.when(pl.int_range(pl.len()).is_in(bad))
            .then(pl.col("ts").dt.offset_by("-4050y"))
            .otherwise(pl.col("ts"))
            .alias("ts")
        )
        rec = FileRecord(1, str(log), None, None, 1, "x", log.stat().st_size, 1000, None, None,
                         "combined", None, None, False)  # fmt: skip
        batch = Batch(requests, parsed.rejects, parsed.conflict_lines, rec)
        classifier = Classifier(settings.classify)

        def raw_of(lines: pl.Series) -> pl.Series:
            return pl.Series([raw[n - 1] for n in lines], dtype=pl.String)

        committed, deferred = isolation.commit_isolated(
            store, batch, classifier.classify_range, classifier.mark_pending, raw_of
        )
        rejects = store.con.execute(
            "SELECT line, reason, raw FROM rejects ORDER BY line"
        ).fetchall()
        stored = store.con.execute("SELECT count(*) FROM requests").fetchone()
        offset = store.con.execute("SELECT read_offset FROM files").fetchone()
    assert [r[0] for r in rejects] == [n + 1 for n in bad]
    assert all(r[1].startswith("could not be stored: ValueError") for r in rejects), rejects
    assert [r[2] for r in rejects] == [raw[n][:RAW_LIMIT] for n in bad]
    assert stored == (997,)
    assert offset == (log.stat().st_size,)
    assert committed.requests.height == 997
    assert deferred  # stored without classifying in the transaction; the range is pending


def _boom_format() -> Format:
    """A parser with a bug: it raises on any block holding the text BOOM."""
    clf = get_format("combined")

    def parse(lines: pl.Series, state: ParserState) -> pl.DataFrame:
        if lines.str.contains("BOOM").any():
            raise RuntimeError("parser bug on BOOM")
        return clf.parse(lines, state)

    return Format("combined", parse, "combined, with a bug")


def test_a_block_that_fails_to_parse_loses_only_the_failing_lines(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    log = tmp_path / "a.log"
    lines = [_line("combined", n) for n in range(2000)]
    lines[3] = lines[3].replace('"c"', '"BOOM"')
    lines[1500] = "BOOM " + lines[1500]
    log.write_text("\n".join(lines) + "\n")
    with Store.open(db) as store:
        ingester = Ingester(store, load_settings(db=db, env={}))
        ingester.forced = _boom_format()
        report = ingester.ingest([log])
        rejects = store.con.execute(
            "SELECT line, reason, raw FROM rejects ORDER BY line"
        ).fetchall()
        stored = store.con.execute("SELECT count(*), count(DISTINCT line) FROM requests").fetchone()
    assert report.files[0].status == "ok"
    assert (report.total("parsed"), report.total("rejected"), report.total("lines")) == (
        1998,
        2,
        2000,
    )
    assert [(r[0], r[2]) for r in rejects] == [(4, lines[3]), (1501, lines[1500])]
    assert all(r[1] == "could not be parsed: RuntimeError: parser bug on BOOM" for r in rejects)
    assert stored == (1998, 1998)


def test_a_classification_range_that_keeps_failing_is_quarantined(tmp_path: Path) -> None:
    """The rule SQL fails on one 409's row: its range (bisected to at most a second) is set
    aside with the reason, every other 409 is explained, and later runs are not blocked."""
    db = tmp_path / "db.duckdb"
    log = tmp_path / "a.log"
    lines = [_line("combined", n) for n in range(700)]
    log.write_text("\n".join(lines) + "\n")
    with Store.open(db) as store:
        settings = load_settings(db=db, env={})
        Ingester(store, settings, classify=False).ingest([log])
        store.con.execute("INSERT INTO classify_pending SELECT min(ts), max(ts) FROM requests")
        classifier = Classifier(settings.classify)
        poisoned = "/orders/350"
        for form in ("sql", "sql_unlinked", "sql_plain"):  # every form of the query
            setattr(classifier, form, (
                f"SELECT * FROM ({getattr(classifier, form)}) WHERE CASE WHEN path = '{poisoned}'"
                " THEN error('the rule cannot handle this row') ELSE true END"
            ))  # fmt: skip
        classifier.classify_pending(store.con)
        quarantined = store.con.execute("SELECT lo, hi, reason FROM classify_quarantine").fetchall()
        explained = store.con.execute("SELECT count(*) FROM conflicts").fetchone()
        pending = store.con.execute("SELECT count(*) FROM classify_pending").fetchone()
        at = store.con.execute(f"SELECT ts FROM requests WHERE path = '{poisoned}'").fetchone()
    assert pending == (0,)
    assert len(quarantined) == 1
    lo, hi, reason = quarantined[0]
    assert at is not None and lo <= at[0] <= hi
    assert hi - lo <= timedelta(seconds=1)
    assert "the rule cannot handle this row" in reason
    # Only the 409s within the quarantined second are left unexplained (lines 49 and 350 are
    # the only 409s in seconds :49 and :50).
    assert explained is not None and 98 <= explained[0] <= 99


def test_a_backlog_too_big_for_the_memory_limit_is_explained_in_pieces(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A watcher under its memory limit that starts on a fleet's backlog (both tiers, linked by
    request id) ran out of memory explaining it in one pass and stopped with a traceback: it
    now explains it in halves by time, with the same causes as a pass without the limit.

    Since the classification reads only the 409 heads' joined lines (classify.HEADS_ONLY), this
    backlog fits the default limit in one pass; the limited run uses the query as it was before
    (the same rows, several times the memory), so the pieces are still exercised, and its
    causes must equal the current query's without any limit."""
    from bench.watch_cost import Fleet
    from conflictradar.ingest.classify import HEADS_ONLY

    logs = tmp_path / "logs"
    logs.mkdir()
    for name, data in Fleet(7).lines(200_000, 1_750_000_000_000_000, per_second=70).items():
        (logs / name).write_bytes(data)
    paths = sorted(logs.iterdir())

    def causes(db: Path, limited: bool) -> set[tuple[str, int, str]]:
        settings = load_settings(db=db, env={})
        memory_limit = settings.watch.memory_limit if limited else None  # default 128MB
        with Store.open(db, sandboxed=True, memory_limit=memory_limit, threads=1) as store:
            ingester = Ingester(store, settings, classify_later=True)  # as `watch` reads
            if limited:
                assert ingester.classifier is not None and HEADS_ONLY in ingester.classifier.sql
                ingester.classifier.sql = ingester.classifier.sql.replace(HEADS_ONLY, "")
            for path in paths:
                ingester.ingest_source(inspect(path), lambda path=path: path.open("rb"))
            ingester.classify_pending()
            assert store.con.execute("SELECT count(*) FROM classify_pending").fetchone() == (0,)
            rows = store.con.execute("SELECT file, line, cause FROM conflicts").fetchall()
        return {(Path(f).name, n, c) for f, n, c in rows}

    with caplog.at_level("INFO", logger="conflictradar.ingest"):
        limited = causes(tmp_path / "limited.duckdb", limited=True)
    assert any("classifying in pieces" in r.getMessage() for r in caplog.records)
    assert len(limited) > 4_000
    assert limited == causes(tmp_path / "free.duckdb", limited=False)


def test_the_watcher_backs_off_a_file_whose_reads_keep_failing(tmp_path: Path) -> None:
    """A failure not tied to the lines (here the `files` table no longer matches what the
    writer inserts, so every commit fails) is retried after growing waits, not every poll."""
    db = tmp_path / "db.duckdb"
    log = tmp_path / "a.log"
    _write(log, "combined", 10, ())
    with Store.open(db) as store:
        tailer = Tailer(store, Ingester(store, load_settings(db=db, env={})), [str(log)], 0.1)
        store.con.execute("ALTER TABLE files ADD COLUMN extra INTEGER")
        started = time.monotonic()
        polls = []
        while len(polls) < 10 or time.monotonic() - started < 3:
            polls.append(tailer.poll_once())
        elapsed = time.monotonic() - started
        followed = next(iter(tailer.followed.values()))
        assert polls == [0] * len(polls)
        # Tries at 0, >= 1, >= 3, >= 7 ... s (waits doubling), however many polls there were.
        assert 1 <= followed.failures <= 1 + int(math.log2(elapsed + 1)) < len(polls)
        assert store.con.execute("SELECT count(*) FROM requests").fetchone() == (0,)
        tailer.close()


def test_a_stray_time_does_not_widen_the_range_a_batch_re_explains() -> None:
    """One line claiming 1978 among lines from now: two short ranges, not 48 years."""
    now = datetime(2026, 12, 3, 10, tzinfo=UTC)
    ts = pl.Series([now, now + timedelta(seconds=5), datetime(1978, 1, 11, tzinfo=UTC), None])
    assert time_spans(ts) == [
        (datetime(1978, 1, 11, tzinfo=UTC), datetime(1978, 1, 11, tzinfo=UTC)),
        (now, now + timedelta(seconds=5)),
    ]
    scattered = pl.Series([now - timedelta(days=d * 37) for d in range(100)])
    assert len(time_spans(scattered)) == 16  # bounded: split only at the widest gaps


def test_a_one_line_clock_glitch_is_rejected_but_a_quiet_log_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    glitch, quiet = tmp_path / "glitch.log", tmp_path / "quiet.log"
    lines = [_line("combined", n) for n in range(10)]
    lines[4] = lines[4].replace("/2025:", "/1978:")
    glitch.write_text("\n".join(lines) + "\n")
    days = [f"{d:02d}/Nov/2025" for d in (1, 9, 17, 25)]
    quiet.write_text(
        "".join(
            _line("combined", n).replace("20/Nov/2025", day) + "\n" for n, day in enumerate(days)
        )
    )
    with Store.open(db) as store:
        Ingester(store, load_settings(db=db, env={})).ingest([glitch, quiet])
        rejects = store.con.execute("SELECT file, line, reason FROM rejects").fetchall()
        kept = store.con.execute(f"SELECT count(*) FROM requests WHERE file = '{quiet}'").fetchone()
    assert rejects == [(str(glitch), 5, STRAY)]
    assert kept == (4,)
