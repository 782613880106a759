"""The lake on a real Dask cluster (a `dask scheduler` and two `dask worker` processes on
127.0.0.1) gives what the one-machine ingest gives, row for row: the sample logs, a generated
multi-host set cut into many byte ranges, re-runs and appends, and a worker killed mid-job."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conflictradar.cli import main
from conflictradar.ingest import reads
from conflictradar.ingest.errors import QueryRefusedError
from conflictradar.ingest.lake import layout
from conflictradar.ingest.lake.cluster import ingest_to_lake
from conflictradar.ingest.lake.manifest import load_units
from conflictradar.ingest.lake.reader import LakeReader
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.reader import DirectReader
from conflictradar.ingest.reads import Filters
from conflictradar.ingest.settings import Settings, SqlSettings
from conflictradar.ingest.store import Store
from conflictradar.sample_logs.generate import parse_start, write_batch
from tests.lake_kit import Cluster, assert_same, dask_cluster

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_logs" / "data"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask"), workers=2) as c:
        yield c


def _one_machine(paths: list[Path], db: Path) -> None:
    """The one-machine ingest of the same files (through its API: a rotated copy that adds
    nothing is not an error here)."""
    with Store.open(db) as store:
        Ingester(store, Settings(db=db)).ingest(expand_paths([str(p) for p in paths]))


def _lake(client_address: str, paths: list[Path], lake: Path, split: int) -> tuple[int, int]:
    from distributed import Client

    with Client(client_address, timeout="30s") as client:
        report, hours = ingest_to_lake(client, [str(p) for p in paths], lake, Settings(),
                                       split_bytes=split)  # fmt: skip
    return report.total("parsed"), hours


def _files(lake: Path) -> set[str]:
    return {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sample_lake(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample logs as a lake (through the CLI, on the cluster) and as a database."""
    tmp = tmp_path_factory.mktemp("sample")
    lake, db = tmp / "lake", tmp / "one.duckdb"
    args = ["ingest", str(SAMPLE), "--lake", str(lake), "--cluster", cluster.address, "-q"]
    assert main(args) == 0
    _one_machine([SAMPLE], db)
    return lake, db


def test_sample_logs_lake_equals_one_machine(
    cluster: Cluster, sample_lake: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lake, db = sample_lake
    counts = assert_same(lake, db)
    assert counts["requests"] == 6500 and counts["conflicts"] == 442
    # The check, through the CLI: the same answer from the lake and the database.
    capsys.readouterr()
    query = "select cause, count(*) from conflicts group by all order by all"
    assert main(["sql", "--lake", str(lake), query, "--format", "csv"]) == 0
    from_lake = capsys.readouterr().out
    assert main(["sql", "--db", str(db), query, "--format", "csv"]) == 0
    assert from_lake == capsys.readouterr().out
    assert "concurrent_update,109" in from_lake
    # A re-run stores nothing and rewrites nothing.
    before = {p: (lake / p).stat().st_mtime_ns for p in _files(lake)}
    args = ["ingest", str(SAMPLE), "--lake", str(lake), "--cluster", cluster.address, "-q"]
    assert main(args) == 0
    assert {p: (lake / p).stat().st_mtime_ns for p in _files(lake)} == before


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO '{lake}/requests/evil.parquet'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('{lake}/../outside.parquet')",
        "ATTACH '{lake}/x.duckdb'",
        "CREATE TABLE t AS SELECT 1",
        "SET enable_external_access = true",
        "SELECT 1; DROP VIEW requests",
    ],
)
def test_lake_sql_is_read_only_and_sandboxed(sample_lake: tuple[Path, Path], query: str) -> None:
    lake, _ = sample_lake
    before = _files(lake)
    with pytest.raises(QueryRefusedError):
        LakeReader(lake, SqlSettings()).user_query(query.format(lake=lake))
    assert _files(lake) == before


def test_dashboard_reads_over_the_lake_equal_the_database(sample_lake: tuple[Path, Path]) -> None:
    lake, db = sample_lake
    on_lake = LakeReader(lake, SqlSettings())
    on_db = DirectReader(db, SqlSettings())
    status = reads.data_status(on_lake)
    assert (status.requests, status.conflicts) == (6500, 442)
    assert status.newest is not None and status.oldest is not None
    window = Filters(status.oldest, status.newest + timedelta(minutes=1))
    for read in (reads.kpis, reads.timeline, reads.top_endpoints, reads.cause_shares):
        mine, theirs = read(on_lake, window), read(on_db, window)
        assert mine.sort(mine.columns).equals(theirs.sort(theirs.columns)), read.__name__
    assert reads.filter_options(on_lake) == reads.filter_options(on_db)


def test_alerts_backtest_over_the_lake_equals_the_database(
    sample_lake: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lake, db = sample_lake
    span = ["--since", "2025-06-02T08:00Z", "--until", "2025-06-03T08:00Z"]
    capsys.readouterr()
    assert main(["alerts", "backtest", "--lake", str(lake), *span]) == 0
    from_lake = capsys.readouterr().out
    assert main(["alerts", "backtest", "--db", str(db), *span]) == 0
    assert from_lake == capsys.readouterr().out
    assert "would have fired" in from_lake


def _live_log(path: Path, now: datetime) -> None:
    """Two quiet hours of nginx lines up to `now`, then 40 409s on one order in its last
    three minutes."""
    lines = []
    for i in range(2400):
        ts = now - timedelta(hours=2) + timedelta(seconds=3 * i)
        if ts >= now - timedelta(minutes=3):
            break
        lines.append((ts, f"GET /orders/{i % 50} HTTP/1.1", 200))
    for i in range(40):
        lines.append((now - timedelta(seconds=170 - 4 * i), "PUT /orders/7 HTTP/1.1", 409))
    path.write_text("".join(
        f'10.0.0.{i % 9} - - [{ts:%d/%b/%Y:%H:%M:%S} +0000] "{req}" {status} 12 "-" "k6"\n'
        for i, (ts, req, status) in enumerate(lines)
    ))  # fmt: skip


def test_alerts_check_over_the_lake_fires_as_over_the_database(
    cluster: Cluster, sample_lake: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    log, lake, db = tmp_path / "gw.log", tmp_path / "lake", tmp_path / "one.duckdb"
    _live_log(log, datetime.now(UTC) - timedelta(seconds=5))
    config = tmp_path / "alerts.toml"
    config.write_text(
        '[[alerts.rules]]\nname = "spike"\nscope = "global"\nfor = "0s"\nmin_count = 20\n'
    )
    assert main(["ingest", str(log), "--lake", str(lake), "--cluster", cluster.address, "-q"]) == 0
    _one_machine([log], db)
    state = tmp_path / "alert-state.duckdb"  # --db holds the alert state when counting a lake
    opts = ["--config", str(config)]
    capsys.readouterr()
    # Exit 3 while firing, as `alerts check` on the database of the same lines.
    assert main(["alerts", "check", "--lake", str(lake), "--db", str(state), *opts]) == 3
    from_lake = capsys.readouterr().out
    assert main(["alerts", "check", "--db", str(db), *opts]) == 3
    from_db = capsys.readouterr().out

    def firing(out: str) -> list[str]:  # the event without its time and rate detail (the two
        # checks ran seconds apart, so a partly covered minute weighs a little differently)
        return [ln.split("  ", 1)[1].split(" (")[0] for ln in out.splitlines() if "FIRING" in ln]

    assert (
        firing(from_lake)
        == firing(from_db)
        == ["FIRING             spike: all 409s firing: 40 409s in 5m"]
    )
    # The state is kept in --db: checked again, nothing changes and the alert is still firing.
    assert main(["alerts", "check", "--lake", str(lake), "--db", str(state), *opts]) == 3
    again = capsys.readouterr().out
    assert "no alert changed state" in again and "1 alerts firing" in again
    # A lake with nothing recent (the sample logs are from 2025): nothing fires, exit 0.
    quiet = ["--db", str(tmp_path / "quiet-state.duckdb"), *opts]
    assert main(["alerts", "check", "--lake", str(sample_lake[0]), *quiet]) == 0
    assert main(["alerts", "check", "--lake", str(tmp_path / "nowhere"), *quiet]) == 1
    assert "is not a conflictradar lake" in capsys.readouterr().err


def test_generated_multi_host_set_in_byte_ranges(cluster: Cluster, tmp_path: Path) -> None:
    logs, lake, db = tmp_path / "logs", tmp_path / "lake", tmp_path / "one.duckdb"
    write_batch(logs, seed=7, lines=4_000, start_us=parse_start("2025-06-02T08:00:00Z"), hours=2)
    inputs = sorted(p for p in logs.iterdir() if p.suffix in (".log", ".jsonl"))
    parsed, hours = _lake(cluster.address, inputs, lake, split=128 << 10)
    assert parsed == 4_000 and hours >= 2
    units = load_units(lake)
    assert len(units) > len(inputs)  # large files were cut into several byte ranges
    assert all(u.end - u.start <= (128 << 10) + 4096 for u in units if u.envelope is None)
    _one_machine(inputs, db)
    assert_same(lake, db)

    # Appended lines: only the new bytes are stored, and the hours beside them re-explained.
    gw = logs / "orders-gw-a.log"
    tail = gw.read_bytes().splitlines(keepends=True)[-300:]
    with gw.open("ab") as fh:
        fh.writelines(tail)
    # A rotated, compressed copy of a stored file holds no new bytes: nothing is added.
    gz = logs / "users-alb.log.1.gz"
    gz.write_bytes(gzip.compress((logs / "users-alb.log").read_bytes()))
    inputs.append(gz)
    parsed, _ = _lake(cluster.address, inputs, lake, split=128 << 10)
    assert parsed == 300
    _one_machine(inputs, db)
    assert_same(lake, db)
    before = _files(lake)
    assert _lake(cluster.address, inputs, lake, split=128 << 10) == (0, 0)
    assert _files(lake) == before


def test_killed_worker_mid_job_loses_and_doubles_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """SIGKILL a worker process mid-task (its nanny starts a new one, as a supervisor would)."""
    from distributed import Client

    logs, lake, db = tmp_path / "logs", tmp_path / "lake", tmp_path / "one.duckdb"
    write_batch(logs, seed=11, lines=4_000, start_us=parse_start("2025-06-02T08:00:00Z"), hours=2)
    inputs = sorted(p for p in logs.iterdir() if p.suffix in (".log", ".jsonl"))
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["parsed"] = _lake(cluster.address, inputs, lake, split=32 << 10)[0]
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    job = threading.Thread(target=run)
    with Client(cluster.address, timeout="30s") as client:
        pids = client.run(os.getpid)
        job.start()
        victim = None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline and job.is_alive():
            # A worker in the middle of parsing a range (not just detecting formats).
            busy = [
                w for w, keys in client.processing().items()
                if any(str(k).startswith("parse-") for k in keys)
            ]  # fmt: skip
            if busy:
                victim = busy[0]
                os.kill(pids[victim], signal.SIGKILL)
            time.sleep(0.05)
    job.join(300)
    assert victim is not None, "the job ended before a worker could be killed mid-task"
    assert not job.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["parsed"] == 4_000
    _one_machine(inputs, db)
    assert_same(lake, db)
    assert not list(layout.temp_files(lake))


def test_dashboard_app_over_the_lake_shows_what_the_database_shows(
    sample_lake: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_dashboard import metrics, open_app

    lake, db = sample_lake
    for page in ("overview", "causes"):
        monkeypatch.delenv("CONFLICTRADAR_LAKE", raising=False)
        from_db = open_app(monkeypatch, db, page, range="all")
        monkeypatch.setenv("CONFLICTRADAR_LAKE", str(lake))
        from_lake = open_app(monkeypatch, db, page, range="all")
        assert metrics(from_lake) == metrics(from_db), page
        assert [str(m.value) for m in from_lake.markdown] == [
            str(m.value).replace(str(db.resolve()), str(lake)) for m in from_db.markdown
        ], page
        assert page != "overview" or metrics(from_lake)  # the KPIs are there, not a notice


def _gateway_in_front(service: Path, out: Path) -> None:
    """An Envoy (JSON) gateway log of the requests a service logged (ECS): the same request ids,
    15 ms later, as the gateway in front of it writes them; every 7th answered by the gateway."""
    lines = []
    for i, text in enumerate(service.read_text().splitlines()):
        rec = json.loads(text)
        at = datetime.fromisoformat(rec["@timestamp"].replace("Z", "+00:00"))
        status = rec["http"]["response"]["status_code"]
        line = {
            "start_time": (at + timedelta(milliseconds=15))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "method": rec["http"]["request"]["method"],
            "path": rec["url"]["path"],
            "protocol": "HTTP/1.1",
            "response_code": 409 if i % 7 == 0 else status,
            "request_id": rec["http"]["request"]["id"],
            "x_forwarded_for": rec["client"]["ip"],
            "user_agent": rec.get("user_agent", {}).get("original"),
            "upstream_host": "10.42.1.18:8080",
            "duration": 12,
            "bytes_sent": 100,
        }
        lines.append(json.dumps(line))
    out.write_text("".join(line + "\n" for line in lines))


def test_a_request_across_tiers_is_one_request_in_the_lake(
    cluster: Cluster, tmp_path: Path
) -> None:
    logs, lake, db = tmp_path / "logs", tmp_path / "lake", tmp_path / "one.duckdb"
    logs.mkdir()
    service = logs / "billing-ecs.jsonl"
    service.write_bytes((SAMPLE / "billing-ecs.jsonl").read_bytes())
    _gateway_in_front(service, logs / "billing-gw-envoy.log")
    inputs = sorted(logs.iterdir())
    _lake(cluster.address, inputs, lake, split=64 << 10)
    _one_machine(inputs, db)
    counts = assert_same(lake, db)
    assert counts["request_links"] > 600  # the service's lines joined their gateway's
