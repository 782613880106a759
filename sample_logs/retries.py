"""Retry scenarios: a client repeats a request that already succeeded and gets a 409.

Covers SPEC rule 2 letter by letter: the retry lands on the other gateway node, a third attempt,
a retry exactly 30 s after the success (still a retry) or just outside (not one), a retry from
the same address with another user agent (another client: not a retry), and a retry after a
502/504 whose request did succeed upstream (no 2xx in the log: not a retry).
"""

from __future__ import annotations

from dataclasses import dataclass

from conflictradar.sample_logs.model import RACE_METHODS, Cause, Request
from conflictradar.sample_logs.scenarios import (
    Message,
    Spot,
    World,
    commit,
    edge_deltas,
    exact,
    fallback_cause,
    fill_message,
    new_request,
    other_ua,
    pick_variant,
    read_back,
    split_spec,
    two_sources,
)
from conflictradar.sample_logs.timing import stamps, start_for_stamp
from conflictradar.sample_logs.traffic import SAME

S = Cause.STATE_CONFLICT
D = Cause.DUPLICATE_CREATE


@dataclass(frozen=True, slots=True)
class RetryRow:
    api: str
    spec: str  # "METHOD template"
    kinds: str
    weight: float
    who: str = "user"
    messages: tuple[Message, ...] = ()
    ok_status: int = 200
    profile: str = "action"


# fmt: off
ROWS: tuple[RetryRow, ...] = (
    RetryRow("orders", "POST /orders/{id}/cancel", "order", 3),
    RetryRow("orders", "POST /orders/{id}/pay", "order", 3),
    RetryRow("orders", "POST /orders", "", 2, ok_status=201, profile="create"),
    RetryRow("orders", "PUT /orders/{id}/shipping-address", "order", 1, profile="update"),
    RetryRow("payments", "POST /payments/{id}/capture", "payment", 5, "service", (
        ("Payment has already been captured", None), ("-", None),
        ("Payment status is succeeded", S))),
    RetryRow("payments", "POST /payments", "", 2, "service",
             (("Duplicate idempotency key", D), ("-", None)), 201, "create"),
    RetryRow("payments", "POST /payments/{id}/refunds", "payment", 1, "service",
             (("Refund already exists for this idempotency key", D),), 201, "create"),
    RetryRow("inventory", "POST /v1/reservations/{id}/confirm", "reservation", 4, "service"),
    RetryRow("inventory", "POST /v1/skus", "", 1, "service", ok_status=201, profile="create"),
    RetryRow("documents", "POST /documents/{id}/publish", "document", 2, "web"),
    RetryRow("documents", "POST /documents", "", 1, "web", ok_status=201, profile="create"),
    RetryRow("users", "POST /users/{id}/verify", "user", 2),
    RetryRow("users", "POST /users", "", 1.5, ok_status=201, profile="create"),
    RetryRow("files", "PUT /{id}", "bucket", 1, "s3", (("BucketAlreadyOwnedByYou", Cause.DUPLICATE_CREATE),),
             profile="create"),
    RetryRow("billing", "POST /invoices/{id}/pay", "invoice", 2, "service",
             (("Invoice already paid", S),)),
    RetryRow("billing", "POST /invoices/{id}/finalize", "invoice", 2, "service",
             (("Invoice is not in draft status", S), ("Conflict", None))),
)
# fmt: on

VARIANTS = {
    "normal": 64,
    "double": 8,
    "edge_in": 5,
    "edge_out": 5,
    "other_ua": 6,
    "first_failed": 6,
}
IN_VARIANTS = ("normal", "double", "edge_in")


def build(world: World, row: RetryRow, t0: int, variant: str | None = None) -> list[Request]:
    """A committed retry story starting at `t0`, or [] when none could be placed soundly."""
    chosen = variant or pick_variant(world, VARIANTS)
    return commit(world, lambda: _draw(world, row, t0, chosen))


def _draw(world: World, row: RetryRow, t0: int, variant: str) -> list[Request] | None:
    rng = world.rng
    method, template = split_spec(row.spec)
    ids = [world.resources.fresh(k, t0) for k in row.kinds.split()]
    path = template.replace("{id}", "{}").format(*ids)
    src1, src2 = two_sources(world, row.api, 0.6)  # the retry may hit the other node
    if variant in ("edge_in", "edge_out") and not (exact(src1) and exact(src2)):
        variant = "normal"
    pool = world.pools[row.who]
    client = pool.pick(rng)
    spot = Spot(row.api, path, template)

    status: int = row.ok_status
    upstream: int | None = SAME
    if variant == "first_failed":  # the gateway timed out, the service finished the job anyway
        status, upstream = rng.choice((502, 504)), None
        if row.api == "files":
            status, upstream = 503, SAME
    first = new_request(
        world,
        spot,
        source=src1,
        start_us=t0,
        client=client,
        method=method,
        status=status,
        profile=row.profile,
        upstream=upstream,
    )
    story = [first]

    r_duration = rng.randint(5_000, 80_000)
    if variant in ("edge_in", "edge_out"):
        on_edge, past_edge = edge_deltas(src2, 30)
        target = stamps(first)[0] + (on_edge if variant == "edge_in" else past_edge)
        r_start = start_for_stamp(src2, target, r_duration, rng.randrange(1_000_000))
    elif variant == "double":
        r_start = first.end_us + rng.randint(300_000, 12_000_000)
    elif variant == "other_ua" and method in RACE_METHODS:
        r_start = first.end_us + rng.randint(8_000_000, 20_000_000)  # keep clear of rule 3
    else:
        r_start = first.end_us + rng.randint(300_000, 21_000_000)
    retrier = other_ua(world, pool, client) if variant == "other_ua" else client
    attempts = 2 if variant == "double" else 1
    for _ in range(attempts):
        text, msg_cause = rng.choice(row.messages) if row.messages else (None, None)
        message = None if text in (None, "-") else fill_message(world, str(text))
        cause = (
            Cause.RETRY_AFTER_SUCCESS
            if variant in IN_VARIANTS
            else fallback_cause(method, path, msg_cause if message else None)
        )
        retry = new_request(
            world,
            spot,
            source=src2,
            start_us=r_start,
            client=retrier,
            method=method,
            status=409,
            profile=row.profile,
            message=message,
            duration_us=r_duration,
            cause=cause,
        )
        story.append(retry)
        r_start = retry.end_us + rng.randint(400_000, 4_000_000)
    if row.api != "files":
        story.append(read_back(world, spot, source=src2, after_us=story[-1].end_us, client=retrier))
    return story
