"""Single-409 scenarios: the service (or the gateway) refuses one request; no race, no retry.

Their cause comes from SPEC rules 1 and 4-9: the gateway answering for the upstream, the error
message (with tricky texts: "locked" vs "blocked", "in progress", codes like `BucketNotEmpty`),
then the method and action verb. Rows list the texts the service really sends for that endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from conflictradar.sample_logs.model import FILE_BY_NAME, SOURCES_BY_API, Cause, Request
from conflictradar.sample_logs.scenarios import (
    UPSTREAM_FORMATS,
    Message,
    Spot,
    World,
    commit,
    fallback_cause,
    fill_message,
    new_request,
    read_back,
    split_spec,
)
from conflictradar.sample_logs.traffic import SAME

V, D = Cause.VERSION_MISMATCH, Cause.DUPLICATE_CREATE
L, S = Cause.RESOURCE_LOCKED, Cause.STATE_CONFLICT


@dataclass(frozen=True, slots=True)
class RejectRow:
    api: str
    spec: str  # "METHOD template"
    kinds: str
    weight: float
    who: str = "user"
    messages: tuple[Message, ...] = ()
    upstream: int | None = SAME  # what the upstream answered: SAME (409), another status, None
    query: str = ""
    profile: str = "update"


# fmt: off
_CAPTURE_LOCKED: tuple[Message, ...] = (
    ("Payment is being processed", L), ("Payment is locked by another operation", L))
_FINALIZE_LOCKED: tuple[Message, ...] = (
    ("Invoice {id} is locked by another finalization", L), ("Row lock timeout exceeded", L),
    ("Invoice is being updated", L))

ROWS: tuple[RejectRow, ...] = (
    RejectRow("orders", "POST /orders/{id}/cancel", "order", 5),
    RejectRow("orders", "POST /orders/{id}/confirm", "order", 1.5),
    RejectRow("orders", "POST /orders/{id}/refund", "order", 1.5),
    RejectRow("orders", "POST /orders", "", 3),
    RejectRow("orders", "POST /carts/{id}/items", "cart", 2.5),
    RejectRow("orders", "PUT /orders/{id}/shipping-address", "order", 2),
    RejectRow("orders", "PATCH /orders/{id}", "order", 3),
    RejectRow("orders", "DELETE /orders/{id}", "order", 2),
    RejectRow("orders", "DELETE /orders/{id}/items/{id}", "order item", 1),
    RejectRow("orders", "POST /orders/{id}/ship", "order", 0.6),  # "ship" is no action verb
    RejectRow("orders", "POST /customers/{id}/orders", "email", 0.8),
    RejectRow("payments", "POST /payments", "", 3, "service", (("-", None),), upstream=200),
    RejectRow("payments", "POST /payments/{id}/refunds", "payment", 1.2, "service",
              (("Refund could not be created", None),), upstream=202),
    RejectRow("payments", "POST /payments/{id}/capture", "payment", 1.5, "service",
              _CAPTURE_LOCKED, upstream=200),
    RejectRow("payments", "POST /payments/{id}/cancel", "payment", 2, "service", (
        ("Payment cannot be cancelled in status succeeded", S), ("-", None))),
    RejectRow("payments", "POST /payments/{id}/capture", "payment", 3, "service", (
        ("Payment is processing", None), *_CAPTURE_LOCKED,
        ("Capture amount exceeds authorized amount", None))),
    RejectRow("payments", "POST /payments", "", 3, "service", (
        ("Duplicate idempotency key", D), ("Resource already exists", D), ("-", None))),
    RejectRow("payments", "POST /payments/{id}/refunds", "payment", 1.5, "service", (
        ("Refund blocked by policy", None), ("Another refund is being processed", L))),
    RejectRow("payments", "PATCH /payments/{id}", "payment", 1.5, "service", (
        ("If-Match precondition failed", V), ("-", None),
        ("Resource has been modified since you last read it", V))),
    RejectRow("payments", "POST /payouts/{id}/approve", "payout", 1, "admin",
              (("Payout already processed", S), ("-", None))),
    RejectRow("payments", "GET /payouts/{id}/report", "payout", 1.2, "admin",
              (("Report generation in progress", None),)),
    RejectRow("inventory", "PATCH /v1/skus/{id}/stock", "sku", 3.5, "scanner", upstream=423),
    RejectRow("inventory", "POST /v1/reservations", "", 1.5, "service", upstream=200),
    RejectRow("inventory", "POST /v1/skus", "", 1.5, "service"),
    RejectRow("inventory", "POST /v1/reservations", "", 2, "service"),
    RejectRow("inventory", "PUT /v1/skus/{id}", "sku", 2, "service"),
    RejectRow("inventory", "PATCH /v1/skus/{id}/stock", "sku", 2, "scanner"),
    RejectRow("inventory", "DELETE /v1/reservations/{id}", "reservation", 1, "service"),
    RejectRow("inventory", "POST /v1/reservations/{id}/confirm", "reservation", 2, "service"),
    RejectRow("inventory", "POST /v1/reservations/{id}/release", "reservation", 0.8, "service"),
    RejectRow("inventory", "DELETE /v1/warehouses/{id}", "warehouse", 0.3, "service"),
    RejectRow("documents", "MKCOL /dav/{id}/{id}/{id}/", "team folder folder", 4, "dav"),
    RejectRow("documents", "MOVE /dav/{id}/{id}/{id}.docx", "team folder document", 2, "dav"),
    RejectRow("documents", "COPY /dav/{id}/{id}/{id}.docx", "team folder document", 1, "dav"),
    RejectRow("documents", "GET /documents/{id}/content", "document", 3, "web", profile="read"),
    RejectRow("documents", "POST /documents/{id}/publish", "document", 1.5, "web"),
    RejectRow("documents", "POST /documents/{id}/archive", "document", 1, "web"),
    RejectRow("documents", "PUT /documents/{id}/versions/{id}", "document version", 1.5, "web"),
    RejectRow("documents", "DELETE /documents/{id}", "document", 1, "web"),
    RejectRow("documents", "POST /documents", "", 1, "web"),
    RejectRow("documents", "PUT /dav/{id}/{id}/{id}.docx", "team folder document", 1, "dav"),
    RejectRow("users", "POST /users", "", 3),
    RejectRow("users", "POST /users/{id}/emails", "user", 1),
    RejectRow("users", "POST /users/{id}/deactivate", "user", 1),
    RejectRow("users", "POST /users/{id}/verify", "user", 1),
    RejectRow("users", "PUT /users/{id}/preferences", "user", 1),
    RejectRow("users", "DELETE /users/{id}/sessions/{id}", "user session", 1),
    RejectRow("users", "POST /users", "", 0.8, upstream=200),
    RejectRow("users", "POST /webhooks/identity", "", 0.6, "service", upstream=None),
    RejectRow("files", "PUT /{id}", "bucket", 1, "s3", (("BucketAlreadyExists", Cause.DUPLICATE_CREATE),)),
    RejectRow("files", "DELETE /{id}", "bucket", 1.2, "s3", (("BucketNotEmpty", None),)),
    RejectRow("files", "PUT /acme-uploads", "", 0.6, "s3", (("InvalidBucketState", S),),
              query="versioning"),
    RejectRow("files", "POST /acme-uploads/tenants/{id}/uploads/{id}.pdf", "tenant upload", 0.8,
              "s3", (("RestoreAlreadyInProgress", None),), query="restore"),
    RejectRow("files", "PUT /acme-uploads", "", 0.5, "s3", (("OperationAborted", Cause.RESOURCE_LOCKED),),
              query="lifecycle"),
    RejectRow("billing", "POST /invoices/{id}/finalize", "invoice", 4, "service", (
        *_FINALIZE_LOCKED, ("Invoice is not in draft status", S),
        ("Finalization blocked by policy", None))),
    RejectRow("billing", "POST /invoices/{id}/void", "invoice", 1.5, "admin", (
        ("Can't void a paid invoice", S), ("Void blocked by policy", None),
        ("Invoice already paid", S))),
    RejectRow("billing", "PUT /invoices/{id}", "invoice", 2, "admin", (
        ("ETag does not match current representation", V),
        ("Invoice data is out of date; reload and retry", V),
        ("Unlock the invoice before editing", None),
        ("Invoice is blocked by fraud review", None))),
    RejectRow("billing", "PATCH /subscriptions/{id}", "subscription", 2, "admin", (
        ("Subscription is past_due; plan changes are not allowed", S),
        ("Subscription is locked", L), ("Stale revision {n}", V),
        ("Account lockout in effect", L))),
    RejectRow("billing", "POST /customers/{id}/subscriptions", "customer", 2, "service", (
        ("A subscription already exists for this customer", D),
        ("Unique constraint violated: customer_plan_key", D))),
    RejectRow("billing", "DELETE /customers/{id}", "customer", 0.8, "admin", (
        ("Customer has open invoices", None), ("Customer is in use by {n} subscriptions", L))),
    RejectRow("billing", "GET /invoices/{id}/pdf", "invoice", 1.2, "service", (
        ("PDF rendering in progress", None), ("Invoice is locked", L)), profile="read"),
    RejectRow("billing", "POST /invoices", "", 1, "service", (
        ("Invoice number already exists", D), ("Duplicate invoice number", D))),
)
# fmt: on

# The lock-contention storm of the billing spike.
FINALIZE_LOCKED = RejectRow(
    "billing", "POST /invoices/{id}/finalize", "invoice", 0, "service", _FINALIZE_LOCKED
)


def expected_cause(
    row: RejectRow, source: str, method: str, path: str, message_cause: Cause | None
) -> Cause:
    fmt = FILE_BY_NAME[source].format
    if fmt in UPSTREAM_FORMATS and row.upstream not in (SAME, None, 409):
        return Cause.GATEWAY_CONFLICT
    return fallback_cause(method, path, message_cause)


def build(world: World, row: RejectRow, t0: int) -> list[Request]:
    """A committed single-409 story at `t0`, or [] when none could be placed soundly."""
    return commit(world, lambda: _draw(world, row, t0))


def _draw(world: World, row: RejectRow, t0: int) -> list[Request] | None:
    rng = world.rng
    method, template = split_spec(row.spec)
    ids = [
        world.resources.fresh(k, t0) if rng.random() < 0.6 else world.resources.pick(k, t0)
        for k in row.kinds.split()
    ]
    path = template.replace("{id}", "{}").format(*ids)
    source = rng.choice(SOURCES_BY_API[row.api])
    client = world.pools[row.who].pick(rng)
    spot = Spot(row.api, path, template)
    story: list[Request] = []
    looks_first = method != "GET" and row.who not in ("s3", "dav") and rng.random() < 0.45
    if looks_first and t0 - 25_000_000 > world.start_us:  # the client read the resource first
        story.append(
            new_request(
                world,
                spot,
                source=source,
                client=client,
                method="GET",
                start_us=t0 - rng.randint(1_000_000, 20_000_000),
                status=200,
                profile="read",
            )
        )
    text, msg_cause = rng.choice(row.messages) if row.messages else (None, None)
    message = None if text in (None, "-") else fill_message(world, str(text))
    cause = expected_cause(row, source, method, path, msg_cause if message else None)
    conflict = new_request(
        world,
        spot,
        source=source,
        start_us=t0,
        client=client,
        method=method,
        status=409,
        profile=row.profile,
        query=row.query,
        upstream=row.upstream,
        message=message,
        cause=cause,
    )
    story.append(conflict)
    if row.api != "files" and rng.random() < 0.5:
        story.append(read_back(world, spot, source=source, after_us=conflict.end_us, client=client))
    return story
