"""`watch --metrics`: a real Prometheus (Debian package) scrapes it on loopback, and its HTTP API
returns the 409 series by endpoint and cause with the same totals as `conflictradar sql`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conflictradar.dashboard.server import stop_process
from conflictradar.ingest.errors import UsageError
from conflictradar.ingest.metric_reads import MetricCounts
from conflictradar.metrics import OTHER, EndpointLabels, LiveStats, StoreCollector, parse_address
from tests.kit import free_port
from tests.system_packages import ensure

DATA = Path(__file__).resolve().parents[1] / "sample_logs" / "data"
FILES = ("orders-gw-a.log", "orders-gw-b.log", "payments-apigw.jsonl", "documents-envoy.log")
PACKAGE = "prometheus"


def prometheus_binary() -> str | None:
    return ensure("prometheus")["prometheus"]


def wait_until(check: object, timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()  # type: ignore[operator]
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conflictradar", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = 0
    for name in FILES:
        shutil.copy(DATA / name, logs / name)
        lines += (logs / name).read_bytes().count(b"\n")
    db = tmp_path / "cr.duckdb"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "watch", str(logs), "--db", str(db),
         "--no-alerts", "--metrics", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: sample(httpx.get(f"{base}/metrics", timeout=5).text,
                                  "conflictradar_lines_read_total") == lines, 120,
                   f"watch to read all {lines} lines")  # fmt: skip
        yield base, db, lines
    finally:
        stop_process(proc)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_prometheus_scrapes_the_same_409_totals_as_sql(
    watcher: tuple[str, Path, int], tmp_path: Path
) -> None:
    base, db, lines = watcher
    binary = prometheus_binary()
    if binary is None:
        reason = f"SKIPPED LOUDLY: Debian package {PACKAGE} is not installed and cannot be"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    health = httpx.get(f"{base}/healthz", timeout=5)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert httpx.get(f"{base}/nope", timeout=5).status_code == 404

    target = base.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: conflictradar\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    prom_port = free_port()
    prom = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(promql: str) -> list[dict[str, object]]:
        body = httpx.get(f"{api}/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    try:
        series = wait_until(
            lambda: query("sum by (endpoint, cause) (conflictradar_conflicts_total)"), 60,
            "Prometheus to scrape the 409 series",
        )  # fmt: skip
        assert isinstance(series, list)
        scraped = {(s["metric"]["endpoint"], s["metric"]["cause"]): int(float(s["value"][1]))  # type: ignore[index]
                   for s in series}  # fmt: skip
        sql = cli("sql", "SELECT endpoint, cause, count(*) AS n FROM conflicts GROUP BY ALL",
                  "--db", str(db), "--format", "json")  # fmt: skip
        assert sql.returncode == 0, sql.stderr
        expected = {(r["endpoint"], r["cause"]): r["n"] for r in json.loads(sql.stdout)}
        assert len(expected) >= 10 and sum(expected.values()) >= 100  # a real spread of series
        assert scraped == expected
        rejects = query("conflictradar_rejects_total")
        stored = cli("sql", "SELECT count(*) AS n FROM rejects", "--db", str(db))
        assert int(float(rejects[0]["value"][1])) == int(stored.stdout.split()[1])  # type: ignore[index]
        up = query('up{job="conflictradar"}')
        assert up[0]["value"][1] == "1"  # type: ignore[index]
        read = query("conflictradar_lines_read_total")
        assert int(float(read[0]["value"][1])) == lines  # type: ignore[index]
    finally:
        stop_process(prom)


def counts(conflicts: list[tuple[str | None, str | None, str | None, int]],
           requests: list[tuple[str | None, str | None, int]]) -> MetricCounts:  # fmt: skip
    return MetricCounts(conflicts, requests, 0, 0, None, [("ops", "delivered", 2)],
                        [("409 spike", "firing", 1)])  # fmt: skip


def test_label_cardinality_is_capped_and_totals_are_kept() -> None:
    collector = StoreCollector(None, EndpointLabels(cap=3), LiveStats())  # type: ignore[arg-type]
    requests = [(f"/e{i}", "GET", 100 - i) for i in range(10)] + [("/e0", "BREW", 5)]
    conflicts = [(f"/e{i}", "PUT", "concurrent_update", i + 1) for i in range(10)]
    conflicts += [("/e1", "PUT", "made_up_cause", 7), (None, None, None, 2)]
    families = {f.name: f for f in collector.families(counts(conflicts, requests))}
    samples = families["conflictradar_conflicts"].samples
    by_endpoint: dict[str, float] = {}
    for s in samples:
        by_endpoint[s.labels["endpoint"]] = by_endpoint.get(s.labels["endpoint"], 0) + s.value
    # The three busiest endpoints keep their names; everything else is summed as "other".
    assert set(by_endpoint) == {"/e0", "/e1", "/e2", OTHER}
    assert sum(by_endpoint.values()) == sum(c[3] for c in conflicts)
    assert by_endpoint[OTHER] == sum(range(4, 11)) + 2
    assert {s.labels["cause"] for s in samples} == {"concurrent_update", OTHER}
    methods = {s.labels["method"] for s in families["conflictradar_requests"].samples}
    assert methods == {"GET", OTHER}
    # Admission is sticky: a new busiest endpoint later does not evict a labelled one.
    later = collector.families(counts([("/new", "GET", None, 1000)], [("/new", "GET", 10**6)]))
    labels = {s.labels["endpoint"] for f in later if f.name == "conflictradar_conflicts"
              for s in f.samples}  # fmt: skip
    assert labels == {OTHER}
    assert families["conflictradar_deliveries"].samples[0].labels == {
        "channel": "ops", "outcome": "delivered"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "address"),
    [("9409", ("127.0.0.1", 9409)), (":9409", ("127.0.0.1", 9409)),
     ("0.0.0.0:9409", ("0.0.0.0", 9409)), ("[::1]:9409", ("::1", 9409)),
     ("localhost:80", ("localhost", 80))],
)  # fmt: skip
def test_metrics_address_defaults_to_loopback(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "abc", "1.2.3.4:99999", "example.com:80", "9409:x"])
def test_a_bad_metrics_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="is not an address"):
        parse_address(text)


def test_a_taken_metrics_port_is_one_sentence(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli("watch", str(tmp_path), "--db", str(tmp_path / "x.duckdb"), "--metrics",
                   str(port))  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == (
        f"conflictradar: error: cannot serve metrics on 127.0.0.1:{port} (Address already in use);"
        " choose another --metrics\n"
    )
