"""Labelled tiered traffic: an Envoy gateway fleet and the ECS-logging service behind it.

    python -m conflictradar.sample_logs.tiered --out DIR [--seed 42] [--requests 4000] [--start T]

Every request crosses one of two gateway nodes and one of two service nodes, and both write a
line with its `X-Request-Id`: the gateway in Envoy's default text format (the client's address in
X-Forwarded-For, the service pod as upstream host), the service in ECS JSON (the gateway pod as
`source.ip`, the error text its database, ORM or cloud API wrote). Service clocks run a few
milliseconds after the gateway's. Each file is in its own time order; nothing else is: a reader
may take the service files first and the gateway files minutes later.

Writes edge-a-envoy.log, edge-b-envoy.log, orders-svc-1.jsonl, orders-svc-2.jsonl and
labels.csv: `request,file,line,cause` for every line of every request its client got a 409 for
(SPEC 5, labelled from the story that made it, not from the classifier's code). The texts are
this generator's own, after the documentation each names.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

GATEWAYS = ("edge-a-envoy.log", "edge-b-envoy.log")
SERVICES = ("orders-svc-1.jsonl", "orders-svc-2.jsonl")
GATEWAY_PODS = {"edge-a-envoy.log": "10.8.0.11", "edge-b-envoy.log": "10.8.0.12"}
SERVICE_PODS = {"orders-svc-1.jsonl": "10.9.3.21", "orders-svc-2.jsonl": "10.9.3.22"}
MS = 1_000
SECOND = 1_000_000
DEFAULT_START = "2025-06-02T08:00:00Z"
DEFAULT_START_US = (
    int(datetime.fromisoformat(DEFAULT_START.replace("Z", "+00:00")).timestamp()) * SECOND
)

# (cause, text) as the systems document them; {n} is filled with a number, {k} with a key.
TEXTS: dict[str, tuple[str, ...]] = {
    "version_mismatch": (
        "org.hibernate.StaleObjectStateException: Row was updated or deleted by another"
        " transaction (or unsaved-value mapping was incorrect) : [shop.Order#{n}]",  # Hibernate
        "Microsoft.EntityFrameworkCore.DbUpdateConcurrencyException: The database operation was"
        " expected to affect 1 row(s), but actually affected 0 row(s); data may have been"
        " modified or deleted since entities were loaded.",  # EF Core
        "ERROR: could not serialize access due to concurrent update",  # PostgreSQL 40001
        "[orders][{n}]: version conflict, current version [{m}] is different than the one"
        " provided [{n}]",  # Elasticsearch
        "conflict: Document update conflict.",  # CouchDB (error: reason)
        "ConditionalCheckFailedException: The conditional request failed",  # DynamoDB
        'Operation cannot be fulfilled on orders.shop.example "ord-{n}": the object has been'
        " modified; please apply your changes to the latest version and try again",  # k8s
    ),
    "duplicate_create": (
        'ERROR: duplicate key value violates unique constraint "orders_ref_key"',  # PostgreSQL
        "E11000 duplicate key error collection: shop.orders index: ref_1 dup key:"
        ' {{ ref: "{k}" }}',  # MongoDB
        "Duplicate entry '{k}' for key 'orders.ref'",  # MySQL 1062
        "UNIQUE constraint failed: orders.ref",  # SQLite
        "BlobAlreadyExists: The specified blob already exists.",  # Azure Blob Storage
        "ORA-00001: unique constraint (SHOP.ORDERS_REF_UK) violated",  # Oracle
    ),
    "resource_locked": (
        "Lock wait timeout exceeded; try restarting transaction",  # MySQL 1205
        "idempotency_key_in_use: There is currently another in-progress request using this"
        " Idempotent Key",  # Stripe
        "OperationAborted: A conflicting conditional operation is currently in progress"
        " against this resource. Try again.",  # Amazon S3
        "LeaseIdMissing: There is currently a lease on the blob and no lease ID was specified"
        " in the request.",  # Azure Blob Storage
        "database is locked",  # SQLite SQLITE_BUSY
        "ORA-00054: resource busy and acquire with NOWAIT specified or timeout expired",
    ),
    "state_conflict": (
        "charge_already_refunded: The charge you're attempting to refund has already been"
        " refunded.",  # Stripe
        "TRANSACTION_ALREADY_REFUNDED: Refund transaction refused - this transaction has already"
        " been refunded.",  # PayPal
        "BucketNotEmpty: The bucket you tried to delete is not empty.",  # Amazon S3
        "ContainerBeingDeleted: The specified container is being deleted.",  # Azure
    ),
}
UNRECOGNISED = ("Request rejected", "E_ORDER_7731", "Computer says no")
AGENTS = ("shop-ios/5.2 (iPhone; iOS 17.4)", "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
          "python-requests/2.32.3", "okhttp/4.12.0")  # fmt: skip
ACTIONS = ("cancel", "pay", "refund", "confirm")


@dataclass(frozen=True)
class Client:
    ip: str
    agent: str


@dataclass
class Hop:
    """One request as both tiers saw it."""

    at_us: int
    client: Client
    method: str
    path: str
    rid: str
    gateway: str
    service: str | None  # None: the gateway answered without reaching a service
    status: int  # what the client received
    service_status: int | None = None  # what the service answered (default: status)
    text: str | None = None  # the service's error text
    cause: str | None = None  # the label, for 409s
    number: int = 0
    lines: dict[str, int] = field(default_factory=dict)


class Story:
    """Draws requests from one random stream; every story gets its own resource path."""

    def __init__(self, rng: random.Random, start_us: int) -> None:
        self.rng = rng
        self.t = start_us
        self.resources = 0
        # distinct addresses: two clients are never one (SPEC's client is address + agent)
        ips = rng.sample(range(100 * 250), 300)
        self.clients = [
            Client(f"198.51.{ip // 250}.{ip % 250 + 1}", rng.choice(AGENTS)) for ip in ips
        ]

    def resource(self, kind: str = "orders") -> str:
        self.resources += 1
        return f"/v1/{kind}/ord_{self.rng.getrandbits(40):010x}{self.resources}"

    def hop(self, dt_us: int, client: Client, method: str, path: str, status: int,
            **kw: object) -> Hop:  # fmt: skip
        rid = f"{self.rng.getrandbits(128):032x}"
        return Hop(self.t + dt_us, client, method, path, rid, self.rng.choice(GATEWAYS),
                   self.rng.choice(SERVICES), status, **kw)  # type: ignore[arg-type]  # fmt: skip

    def text(self, cause: str) -> str:
        n = self.rng.randrange(1, 9_000)
        return self.rng.choice(TEXTS[cause]).format(n=n, m=n + 1, k=f"R-{n:05d}")

    def two_clients(self) -> tuple[Client, Client]:
        a, b = self.rng.sample(self.clients, 2)
        return a, b


def _text_409(s: Story, cause: str) -> list[Hop]:
    """The service's error text is the only evidence; the method alone would say otherwise."""
    method = {"version_mismatch": "POST", "duplicate_create": "PUT", "resource_locked": "PATCH",
              "state_conflict": "PUT"}[cause]  # fmt: skip
    return [s.hop(0, s.rng.choice(s.clients), method, s.resource(), 409, text=s.text(cause),
                  cause=cause)]  # fmt: skip


def _gateway_made(s: Story) -> list[Hop]:
    client = s.rng.choice(s.clients)
    if s.rng.random() < 0.3:  # no upstream reached (a filter answered)
        return [replace(s.hop(0, client, "POST", s.resource(), 409, cause="gateway_conflict"),
                        service=None)]  # fmt: skip
    ok = s.rng.choice((200, 201, 202))
    return [s.hop(0, client, "POST", s.resource(), 409, service_status=ok,
                  cause="gateway_conflict")]  # fmt: skip


def _race(s: Story) -> list[Hop]:
    winner, loser = s.two_clients()
    path = s.resource()
    gap = s.rng.randrange(50 * MS, 4_500 * MS)
    text = s.text("version_mismatch") if s.rng.random() < 0.5 else None
    return [
        s.hop(0, winner, s.rng.choice(("PATCH", "PUT")), path, 200),
        s.hop(gap, loser, s.rng.choice(("PATCH", "PUT", "DELETE")), path, 409, text=text,
              cause="concurrent_update"),
    ]  # fmt: skip


def _retry(s: Story) -> list[Hop]:
    client = s.rng.choice(s.clients)
    path = s.resource("payments")
    first = s.hop(0, client, "POST", path, 201)
    again = s.hop(s.rng.randrange(200 * MS, 25 * SECOND), client, "POST", path, 409,
                  text=s.text("duplicate_create"), cause="retry_after_success")  # fmt: skip
    if s.rng.random() < 0.5:  # the client reused its request id: same tier, two requests
        again.rid = first.rid
    return [first, again]


def _inferred(s: Story) -> list[Hop]:
    client = s.rng.choice(s.clients)
    kind = s.rng.random()
    if kind < 0.4:
        return [s.hop(0, client, "POST", f"{s.resource()}/{s.rng.choice(ACTIONS)}", 409,
                      cause="state_conflict")]  # fmt: skip
    if kind < 0.7:
        return [s.hop(0, client, "DELETE", s.resource(), 409, cause="state_conflict")]
    return [s.hop(0, client, "POST", s.resource(), 409, text=s.rng.choice(UNRECOGNISED),
                  cause="duplicate_create")]  # fmt: skip


def _unknown(s: Story) -> list[Hop]:
    return [s.hop(0, s.rng.choice(s.clients), "GET", s.resource(), 409,
                  text=s.rng.choice(UNRECOGNISED), cause="unknown")]  # fmt: skip


def _background(s: Story) -> list[Hop]:
    client = s.rng.choice(s.clients)
    return [s.hop(0, client, "GET", s.resource(), s.rng.choice((200, 200, 200, 304, 404)))]


STORIES: tuple[tuple[Callable[[Story], list[Hop]], float], ...] = (
    (_background, 55),
    (lambda s: _text_409(s, "version_mismatch"), 5),
    (lambda s: _text_409(s, "duplicate_create"), 5),
    (lambda s: _text_409(s, "resource_locked"), 5),
    (lambda s: _text_409(s, "state_conflict"), 4),
    (_gateway_made, 5),
    (_race, 8),
    (_retry, 6),
    (_inferred, 5),
    (_unknown, 2),
)


def simulate(seed: int, requests: int, start_us: int, background: float | None = None) -> list[Hop]:
    """`requests` requests (hops) from `start_us`. `background`: the weight of plain traffic
    among the stories (default that of STORIES: a labelled set rich in 409s, ~40% of lines;
    850 makes 409s ~5% of lines, as in production)."""
    rng = random.Random(seed)
    story = Story(rng, start_us)
    makers, weights = zip(*STORIES, strict=True)
    if background is not None:  # STORIES[0] is the plain traffic
        weights = (background, *weights[1:])
    hops: list[Hop] = []
    while len(hops) < requests:
        hops.extend(rng.choices(makers, weights)[0](story))
        # stories far enough apart never meet in a 30 s window (each has its own path anyway)
        story.t += rng.randrange(20 * MS, 400 * MS)
    for i, h in enumerate(hops):
        h.number = i + 1
    return hops


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / SECOND, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envoy_line(h: Hop) -> str:
    upstream = f"{SERVICE_PODS[h.service]}:8080" if h.service else "-"
    flags = "-" if h.service else "DI"
    duration = 4 + h.number % 37
    return (
        f'[{_iso(h.at_us)}] "{h.method} {h.path} HTTP/1.1" {h.status} {flags} '
        f"{0 if h.method in ('GET', 'DELETE') else 180} {90 + h.number % 400} {duration} "
        f'{duration - 1 if h.service else "-"} "{h.client.ip}" "{h.client.agent}" "{h.rid}" '
        f'"api.shop.example" "{upstream}"'
    )


def ecs_line(h: Hop, rng: random.Random) -> str:
    status = h.service_status if h.service_status is not None else h.status
    line: dict[str, object] = {
        "@timestamp": _iso(h.at_us + (2 + h.number % 9) * MS),
        "log.level": "warn" if status >= 400 else "info",
        "http": {"request": {"method": h.method, "id": h.rid},
                 "response": {"status_code": status}},
        "url": {"path": h.path},
        "source": {"ip": GATEWAY_PODS[h.gateway]},
        "user_agent": {"original": h.client.agent},
        "service": {"name": "orders-api"},
    }  # fmt: skip
    if rng.random() < 0.5:  # some services log the forwarded client, some only their peer
        line["client"] = {"ip": h.client.ip}
    if h.text and status == 409:
        line["error"] = {"message": h.text}
    return json.dumps(line, separators=(",", ":"))


def write(out: Path, seed: int, requests: int, start_us: int) -> tuple[int, int]:
    """Write the four logs and labels.csv; returns (lines, labelled 409 requests)."""
    hops = simulate(seed, requests, start_us)
    rng = random.Random(seed + 1)
    out.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[tuple[int, str, Hop]]] = {n: [] for n in (*GATEWAYS, *SERVICES)}
    for h in hops:
        by_file[h.gateway].append((h.at_us, envoy_line(h), h))
        if h.service:
            by_file[h.service].append((h.at_us + (2 + h.number % 9) * MS, ecs_line(h, rng), h))
    total = 0
    for name, rows in by_file.items():
        rows.sort(key=lambda r: (r[0], r[2].number))
        with (out / name).open("w", encoding="utf-8") as fh:
            for i, (_t, text, h) in enumerate(rows):
                fh.write(text + "\n")
                h.lines[name] = i + 1
        total += len(rows)
    labelled = [h for h in hops if h.status == 409]
    with (out / "labels.csv").open("w", encoding="utf-8") as fh:
        fh.write("request,file,line,cause\n")
        for h in labelled:
            for name, line in h.lines.items():
                fh.write(f"{h.number},{name},{line},{h.cause}\n")
    return total, len(labelled)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m conflictradar.sample_logs.tiered", description=__doc__
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--requests", type=int, default=4_000)
    p.add_argument("--start", default=DEFAULT_START)
    args = p.parse_args(argv)
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    lines, labelled = write(args.out, args.seed, args.requests, int(start.timestamp() * SECOND))
    print(f"wrote {lines:,} lines, {labelled:,} labelled 409 requests to {args.out}",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
