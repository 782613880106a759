"""Records of the sample-log generator: causes, clients, requests, log files and spikes.

Flow inside sample_logs: traffic + scenarios -> engine (Request values) -> formats (lines) ->
generate (log files, labels.csv, spikes.csv). Every record here is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

# The cause labels of SPEC section 5 are the product's own names. The rule inputs below (methods,
# verbs) are restated here on purpose: the labelled set must not share the classifier's code.
from conflictradar.ingest.causes import Cause as Cause

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
RACE_METHODS = ("PUT", "PATCH", "DELETE")
# fmt: off
ACTION_VERBS = (
    "cancel", "approve", "submit", "pay", "confirm", "close", "reopen", "publish", "archive",
    "activate", "deactivate", "complete", "refund", "capture", "void", "start", "stop", "retry",
    "lock", "unlock", "merge", "checkout", "verify",
)
# fmt: on

SECOND = 1_000_000  # timestamps are integer microseconds since the Unix epoch, UTC


@dataclass(frozen=True, slots=True)
class Client:
    """Who sends a request; SPEC's "client" is exactly (ip, user_agent)."""

    ip: str
    user_agent: str
    kind: str  # browser | mobile | service | cli | bot | probe | dav | s3sdk

    @property
    def key(self) -> tuple[str, str]:
        return (self.ip, self.user_agent)


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the generator knows it; a format writer turns it into one log line."""

    source: str  # basename of the log file it is written to
    start_us: int  # when the gateway received it
    duration_us: int
    client: Client
    method: str
    path: str  # no query string
    query: str  # without "?"; "" when none
    status: int
    upstream_status: int | None  # what the upstream/integration answered; None = not known
    bytes_sent: int
    host: str
    endpoint: str  # template, e.g. /orders/{id}
    rid: int  # 128 random bits: request ids, ports and addresses derive from it
    seq: int  # creation order, a tie-breaker that keeps sorting deterministic
    message: str | None = None  # error text (errorMessage, error.message, S3 error code)
    referer: str | None = None
    protocol: str = "HTTP/1.1"
    cause: Cause | None = None  # the label, for 409s only

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299


@dataclass(frozen=True, slots=True)
class LogFile:
    """One output file: its name, the format it is written in and the API behind it."""

    name: str
    format: str  # combined | apigw | traefik | envoy | alb | s3 | ecs
    api: str
    utc_offset_min: int = 0


FILES: tuple[LogFile, ...] = (
    LogFile("orders-gw-a.log", "combined", "orders", 120),
    LogFile("orders-gw-b.log", "combined", "orders", -300),
    LogFile("payments-apigw.jsonl", "apigw", "payments"),
    LogFile("inventory-traefik.jsonl", "traefik", "inventory"),
    LogFile("documents-envoy.log", "envoy", "documents"),
    LogFile("users-alb.log", "alb", "users"),
    LogFile("files-s3.log", "s3", "files"),
    LogFile("billing-ecs.jsonl", "ecs", "billing"),
)
FILE_BY_NAME: dict[str, LogFile] = {f.name: f for f in FILES}
SOURCES_BY_API: dict[str, tuple[str, ...]] = {}
for _f in FILES:
    SOURCES_BY_API[_f.api] = (*SOURCES_BY_API.get(_f.api, ()), _f.name)


@dataclass(frozen=True, slots=True)
class Spike:
    """A window in which 409s of one scope (`global` or an endpoint template) jump."""

    start_us: int
    end_us: int
    scope: str
