"""`watch --metrics ADDR`: Prometheus `/metrics` and `/healthz` beside the watch loop.

Counts are read from the database at each scrape (`ingest.metric_reads`), so they always agree
with `conflictradar sql`. Label values are bounded: at most MAX_ENDPOINTS endpoint templates get
a label of their own (the busiest when first seen; they keep it while the process runs), the
rest are summed under `endpoint="other"`; methods outside HTTP's standard set and causes outside
the taxonomy read `other` too. Binds loopback unless an address says otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import duckdb
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conflictradar import __version__
from conflictradar.ingest.causes import Cause
from conflictradar.ingest.errors import ConflictRadarError, UsageError
from conflictradar.ingest.metric_reads import MetricCounts, newest_request, read_metric_counts
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store

MAX_ENDPOINTS = 200
OTHER = "other"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
CAUSES = frozenset(c.value for c in Cause)
RATE_WINDOW_S = 10.0
Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class MetricsError(ConflictRadarError):
    """The metrics endpoint cannot listen where it was asked to."""


def parse_address(text: str) -> tuple[str, int]:
    """`9409`, `:9409`, `HOST:9409` or `[::1]:9409` -> (host, port); a bare port is loopback."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"--metrics {text!r} is not an address; use a port (9409, loopback) or HOST:PORT"
            " (127.0.0.1:9409, 0.0.0.0:9409)"
        ) from None
    return host, number


class EndpointLabels:
    """Admits at most `cap` endpoint templates as label values, for the life of the process."""

    def __init__(self, cap: int = MAX_ENDPOINTS) -> None:
        self.cap = cap
        self.admitted: set[str] = set()

    def admit(self, counts: Iterable[tuple[str, int]]) -> None:
        """Admit new endpoints, busiest first, while there is room."""
        for endpoint, _ in sorted(counts, key=lambda c: (-c[1], c[0])):
            if len(self.admitted) >= self.cap:
                return
            self.admitted.add(endpoint)

    def label(self, endpoint: str | None) -> str:
        name = endpoint if endpoint is not None else "none"
        return name if name in self.admitted else OTHER


def _method(value: str | None) -> str:
    return value if value in METHODS else OTHER


def _cause(value: str | None) -> str:
    return value if value in CAUSES else OTHER


class StoreCollector(Collector):
    """Builds the metric families from one snapshot of the database at each scrape."""

    def __init__(self, con: duckdb.DuckDBPyConnection, endpoint: EndpointLabels,
                 live: LiveStats) -> None:  # fmt: skip
        self.con = con
        self.endpoints = endpoint
        self.live = live
        self.lock = threading.Lock()  # one scrape at a time on the cursor

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            counts = read_metric_counts(self.con)
        yield from self.families(counts)

    def families(self, counts: MetricCounts) -> Iterator[Metric]:
        per_endpoint: dict[str, int] = {}
        for endpoint, _, n in counts.requests:
            key = endpoint if endpoint is not None else "none"
            per_endpoint[key] = per_endpoint.get(key, 0) + n
        self.endpoints.admit(per_endpoint.items())

        conflicts = CounterMetricFamily(
            "conflictradar_conflicts", "409 requests stored, by endpoint template, method and cause",
            labels=["endpoint", "method", "cause"],
        )  # fmt: skip
        by_labels = _sum(((self.endpoints.label(e), _method(m), _cause(c)), n)
                         for e, m, c, n in counts.conflicts)  # fmt: skip
        for labels, n in by_labels.items():
            conflicts.add_metric(list(labels), n)
        yield conflicts
        requests = CounterMetricFamily(
            "conflictradar_requests", "Requests stored, by endpoint template and method",
            labels=["endpoint", "method"],
        )  # fmt: skip
        by_labels = _sum(((self.endpoints.label(e), _method(m)), n) for e, m, n in counts.requests)
        for labels, n in by_labels.items():
            requests.add_metric(list(labels), n)
        yield requests
        yield CounterMetricFamily("conflictradar_rejects", "Lines that did not parse (the "
                                  "rejects table)", value=counts.rejects)  # fmt: skip
        yield GaugeMetricFamily("conflictradar_files", "File generations read", value=counts.files)
        deliveries = CounterMetricFamily(
            "conflictradar_deliveries", "Alert delivery attempts, by channel and outcome",
            labels=["channel", "outcome"],
        )  # fmt: skip
        for channel, outcome, n in counts.deliveries:
            deliveries.add_metric([channel, outcome], n)
        yield deliveries
        alerts = GaugeMetricFamily(
            "conflictradar_alerts", "Alerts (rule x scope value) by state", labels=["rule", "state"]
        )
        for rule, state, n in counts.alerts:
            alerts.add_metric([rule, state], n)
        yield alerts
        if counts.newest is not None:
            yield GaugeMetricFamily(
                "conflictradar_newest_request_timestamp_seconds",
                "Timestamp of the newest stored request (time() minus this: data freshness)",
                value=counts.newest.timestamp(),
            )
        yield GaugeMetricFamily(
            "conflictradar_endpoint_labels",
            f"Endpoint templates with a label of their own (at most {self.endpoints.cap}; the "
            'rest are summed as endpoint="other")',
            value=len(self.endpoints.admitted),
        )
        yield from self.live.families()


def _sum(items: Iterable[tuple[tuple[str, ...], int]]) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for labels, n in items:
        out[labels] = out.get(labels, 0) + n
    return out


class LiveStats:
    """What only the running watcher knows: lines read, their rate, lag, loop liveness."""

    def __init__(self) -> None:
        self.started = time.time()
        self.lines = 0
        self.window: list[tuple[float, int]] = []  # (monotonic time, lines) of recent batches
        self.lag_s: float | None = None
        self.last_batch = 0.0  # unix time of the last batch that stored lines
        self.last_loop = time.monotonic()
        self.lock = threading.Lock()

    def batch(self, lines: int, lag_s: float | None) -> None:
        now = time.monotonic()
        with self.lock:
            self.last_loop = now
            if lines:
                self.lines += lines
                self.window.append((now, lines))
                self.last_batch = time.time()
                if lag_s is not None:
                    self.lag_s = lag_s
            self.window = [(t, n) for t, n in self.window if now - t <= RATE_WINDOW_S]

    def rate(self) -> float:
        now = time.monotonic()
        with self.lock:
            return sum(n for t, n in self.window if now - t <= RATE_WINDOW_S) / RATE_WINDOW_S

    def families(self) -> Iterator[Metric]:
        yield CounterMetricFamily("conflictradar_lines_read", "Log lines read by this watcher "
                                  "since it started", value=self.lines)  # fmt: skip
        yield GaugeMetricFamily("conflictradar_ingest_lines_per_second", "Lines read per "
                                f"second over the last {RATE_WINDOW_S:g} s", value=self.rate())  # fmt: skip
        if self.lag_s is not None:
            yield GaugeMetricFamily(
                "conflictradar_ingest_lag_seconds",
                "At the last batch: its commit time minus the newest stored request's timestamp",
                value=self.lag_s,
            )
        if self.last_batch:
            yield GaugeMetricFamily("conflictradar_last_batch_timestamp_seconds",
                                    "When lines were last stored", value=self.last_batch)  # fmt: skip
        yield GaugeMetricFamily("conflictradar_watch_start_timestamp_seconds",
                                "When this watcher started", value=self.started)  # fmt: skip
        info = GaugeMetricFamily("conflictradar_build_info", "Version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

    def healthy(self, stalled_after_s: float) -> bool:
        with self.lock:
            return time.monotonic() - self.last_loop <= stalled_after_s


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class MetricsEndpoint:
    """The watch extension: binds at construction (a taken port fails before watch starts),
    serves from `start` until `close`."""

    def __init__(self, address: tuple[str, int], settings: Settings,
                 max_endpoints: int = MAX_ENDPOINTS) -> None:  # fmt: skip
        host, port = address
        self.live = LiveStats()
        self.labels = EndpointLabels(max_endpoints)
        self.stalled_after_s = max(30.0, 10 * settings.watch.poll_interval_s)
        self.registry = CollectorRegistry(auto_describe=False)
        self._metrics_app = make_wsgi_app(self.registry)
        self._store: Store | None = None
        server_class = type("_Server", (_Server,), {"address_family": _family(host)})
        try:
            self.server: WSGIServer = make_server(host, port, self._app, server_class, _Quiet)
        except OSError as exc:
            raise MetricsError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); choose another --metrics"
            ) from exc
        self.thread = threading.Thread(target=self.server.serve_forever, name="conflictradar-metrics",
                                       daemon=True)  # fmt: skip

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def _app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)
        if path == "/healthz":
            ok = self._store is not None and self.live.healthy(self.stalled_after_s)
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])  # fmt: skip
            return [b"ok\n" if ok else b"watch loop stalled\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"conflictradar watch: /metrics (Prometheus), /healthz\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found\n"]

    # -- the watch extension protocol ---------------------------------------------------------

    def start(self, store: Store, ingester: Ingester, stop: threading.Event) -> None:
        self._store = store
        self.registry.register(StoreCollector(store.con.cursor(), self.labels, self.live))
        self.thread.start()

    def on_batch(self, lines: int) -> None:
        lag = None
        if lines and self._store is not None:
            with contextlib.suppress(duckdb.Error):
                newest = newest_request(self._store.con)
                if newest is not None:
                    lag = max(0.0, (datetime.now(UTC) - newest).total_seconds())
        self.live.batch(lines, lag)

    def close(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for a serve loop that must be running
            self.server.shutdown()
        self.server.server_close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
