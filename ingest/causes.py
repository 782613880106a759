"""The cause taxonomy: what each 409 cause means and the fix a developer should apply.

Drawn from established practice: RFC 9110/6585 conditional requests (ETag, If-Match, 412/428),
idempotency keys (IETF draft `Idempotency-Key`, Stripe's replayed responses), retry with backoff
and jitter, database uniqueness constraints, lock timeouts and queues, state-machine guards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cause(StrEnum):
    GATEWAY_CONFLICT = "gateway_conflict"
    RETRY_AFTER_SUCCESS = "retry_after_success"
    CONCURRENT_UPDATE = "concurrent_update"
    VERSION_MISMATCH = "version_mismatch"
    DUPLICATE_CREATE = "duplicate_create"
    RESOURCE_LOCKED = "resource_locked"
    STATE_CONFLICT = "state_conflict"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CauseInfo:
    cause: Cause
    title: str
    description: str
    remediation: str


CAUSES: tuple[CauseInfo, ...] = (
    CauseInfo(
        Cause.GATEWAY_CONFLICT,
        "Conflict made by the gateway",
        "The gateway answered 409 although the upstream service returned another status (or was "
        "never asked): a gateway policy, plugin, rate or consumer rule produced the conflict, not "
        "the application.",
        "Check the gateway's route, plugin and integration response mappings for this endpoint "
        "(API Gateway integration responses, Kong/Traefik plugins, Envoy filters). Map upstream "
        "statuses through unchanged and reserve 409 for real resource conflicts; if a policy must "
        "refuse, prefer 403/429 with a body that names the policy.",
    ),
    CauseInfo(
        Cause.RETRY_AFTER_SUCCESS,
        "Retry of a request that already succeeded",
        "The same client sent the same non-idempotent request again shortly after it succeeded "
        "(a timeout, a client retry loop or a double submit), and the second attempt conflicted "
        "with the effect of the first.",
        "Make the operation idempotent: accept an `Idempotency-Key` header, store the first "
        "response for it and replay that response (same status and body) on retries instead of "
        "409. On the client, retry only on timeouts/5xx with the same key, with exponential "
        "backoff and jitter, and disable double submits in the UI.",
    ),
    CauseInfo(
        Cause.CONCURRENT_UPDATE,
        "Lost a race with a concurrent write",
        "Another client wrote the same resource moments earlier and this update lost: two "
        "read-modify-write cycles overlapped (lost-update problem).",
        "Use optimistic concurrency: return an `ETag` (or version) on reads, require `If-Match` "
        "on writes and answer 412 Precondition Failed on a mismatch (428 if it is missing). "
        "Clients then re-read the resource, re-apply their change and retry with backoff; for hot "
        "resources, serialise writes per resource (a queue or a per-key lock with a timeout).",
    ),
    CauseInfo(
        Cause.VERSION_MISMATCH,
        "Stale version (optimistic concurrency check failed)",
        "The client wrote with an out-of-date version, ETag or revision: its copy of the resource "
        "was stale when it sent the update.",
        "Have clients send the version they read (`If-Match: <etag>` or a version field) and, on "
        "conflict, re-fetch, merge or re-apply their change and retry. Prefer 412 for failed "
        "preconditions; keep caches short-lived and return the current ETag in the 409/412 body.",
    ),
    CauseInfo(
        Cause.DUPLICATE_CREATE,
        "Duplicate create",
        "A create request collided with a resource that already exists (a unique key, name or "
        "external id is taken).",
        "Make creates idempotent: let clients choose the id and use `PUT /things/{id}`, or accept "
        "an `Idempotency-Key`; check uniqueness before creating and return the existing "
        "resource's location (303/200) when it is the same request. Rely on a database unique "
        "constraint and translate its violation into a 409 whose body names the conflicting "
        "field.",
    ),
    CauseInfo(
        Cause.RESOURCE_LOCKED,
        "Resource locked or busy",
        "The resource was locked or still being processed by another operation (a long-running "
        "job, a pessimistic lock, an import), so the request was refused.",
        "Bound lock hold times and use lock timeouts; expose the operation's progress (202 + a "
        "status URL) and tell clients when to retry with `Retry-After`. Queue conflicting work "
        "per resource instead of refusing it, and release locks in `finally` blocks so crashes "
        "do not leave resources locked.",
    ),
    CauseInfo(
        Cause.STATE_CONFLICT,
        "Invalid state transition",
        "The action is not allowed in the resource's current state (e.g. cancelling a shipped "
        "order, paying an already paid invoice): a business-rule guard refused it.",
        "Model the resource as an explicit state machine and validate transitions server-side; "
        "return the current state and the allowed actions in the 409 body (or hypermedia links) "
        "so clients can refresh and show the right options. Make terminal actions idempotent "
        "(cancelling a cancelled order returns 200) where the intent is already satisfied.",
    ),
    CauseInfo(
        Cause.UNKNOWN,
        "Unexplained conflict",
        "No rule matched: the log carries no message, no competing request in the time windows "
        "and no method that points to a cause.",
        "Log an error reason with every 409 (an `error` or `message` field, or an "
        "`application/problem+json` body's `type`), and the upstream status at the gateway, so "
        "conflictradar and people can tell the causes apart.",
    ),
)
