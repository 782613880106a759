"""Conflict scenarios, shared machinery: the world they draw from, their labels, their checks.

A scenario is a short story of requests (reads, a winning write, a retry...) ending in 409s whose
cause is known by construction. `commit` accepts a story only if SPEC section 5's time rules,
evaluated on the story for every timestamp choice a parser could make, give exactly the intended
labels, and if the story cannot disturb (or be disturbed by) any other labelled 409.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from conflictradar.sample_logs.clients import Pool
from conflictradar.sample_logs.history import RACE_WINDOW_US, RETRY_WINDOW_US, History
from conflictradar.sample_logs.model import (
    ACTION_VERBS,
    FILE_BY_NAME,
    RACE_METHODS,
    SOURCES_BY_API,
    WRITE_METHODS,
    Cause,
    Client,
    Request,
)
from conflictradar.sample_logs.resources import Resources
from conflictradar.sample_logs.timing import EXACT_FORMATS, within
from conflictradar.sample_logs.traffic import SAME, make_request

# Formats that log what the upstream/integration answered (SPEC rule 1 can apply).
UPSTREAM_FORMATS = ("apigw", "traefik", "alb")
TIME_RULES = (Cause.GATEWAY_CONFLICT, Cause.RETRY_AFTER_SUCCESS, Cause.CONCURRENT_UPDATE)
AMBIGUOUS = "ambiguous"

Message = tuple[str, Cause | None]  # error text and the message rule it triggers (None: none)


@dataclass
class World:
    """Everything scenarios and background traffic draw from (mutable generator state)."""

    rng: random.Random
    pools: dict[str, Pool]
    resources: Resources
    history: History = field(default_factory=History)
    seq: int = 0
    start_us: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def split_spec(spec: str) -> tuple[str, str]:
    method, template = spec.split(" ", 1)
    return method, template


def fallback_cause(method: str, path: str, message_cause: Cause | None) -> Cause:
    """SPEC rules 4-9 for a 409 that no time rule claims."""
    if message_cause is not None:
        return message_cause
    if method == "POST":
        last = path.rstrip("/").rsplit("/", 1)[-1].lower()
        return Cause.STATE_CONFLICT if last in ACTION_VERBS else Cause.DUPLICATE_CREATE
    if method in ("PUT", "PATCH"):
        return Cause.VERSION_MISMATCH
    if method == "DELETE":
        return Cause.STATE_CONFLICT
    return Cause.UNKNOWN


def time_rule(x: Request, story: list[Request]) -> Cause | str | None:
    """Rules 1-3 for the 409 `x` within its story: a cause, None, or AMBIGUOUS."""
    fmt = FILE_BY_NAME[x.source].format
    if fmt in UPSTREAM_FORMATS and x.upstream_status is not None and x.upstream_status != 409:
        return Cause.GATEWAY_CONFLICT
    for rule, window in (
        (Cause.RETRY_AFTER_SUCCESS, RETRY_WINDOW_US),
        (Cause.CONCURRENT_UPDATE, RACE_WINDOW_US),
    ):
        answers = []
        for e in story:
            if not e.ok or e.path != x.path or e is x:
                continue
            same = e.client.key == x.client.key
            if rule is Cause.RETRY_AFTER_SUCCESS and not (same and e.method == x.method):
                continue
            if rule is Cause.CONCURRENT_UPDATE and (
                same or x.method not in RACE_METHODS or e.method not in WRITE_METHODS
            ):
                continue
            answers.append(within(e, x, window))
        if True in answers:
            return rule
        if None in answers:
            return AMBIGUOUS
    return None


def sound(story: list[Request]) -> bool:
    """Every 409 of the story gets its intended label under every timestamp choice."""
    for x in story:
        if x.status != 409:
            continue
        decided = time_rule(x, story)
        if decided == AMBIGUOUS:
            return False
        if decided is None and x.cause in TIME_RULES:
            return False
        if decided is not None and decided != x.cause:
            return False
    return True


def commit(
    world: World, build: Callable[[], list[Request] | None], tries: int = 8
) -> list[Request]:
    """Build a story (re-drawing on failure) and reserve it; [] when no draw was sound."""
    for _ in range(tries):
        story = build()
        if story and sound(story) and world.history.admits(story):
            world.history.add(story)
            return story
    return []


def pick_variant(world: World, variants: Mapping[str, float]) -> str:
    """One of a scenario's variants, drawn with their weights."""
    return world.rng.choices(list(variants), list(variants.values()))[0]


def two_sources(world: World, api: str, p_other: float) -> tuple[str, str]:
    """The log files of the first and second request of a story: the second is on the API's
    other gateway node with probability `p_other` (when it has two), else on the same one."""
    sources = SOURCES_BY_API[api]
    first = world.rng.choice(sources)
    if len(sources) > 1 and world.rng.random() < p_other:
        return first, next(s for s in sources if s != first)
    return first, first


def exact(source: str) -> bool:
    return FILE_BY_NAME[source].format in EXACT_FORMATS


def edge_deltas(source: str, window_s: int) -> tuple[int, int]:
    """(exactly on the window edge, just outside it) in us, in the format's resolution."""
    fmt = FILE_BY_NAME[source].format
    outside = 1_000 if fmt in ("traefik", "ecs") else 1_000_000
    return window_s * 1_000_000, window_s * 1_000_000 + outside


def other_ua(world: World, pool: Pool, client: Client) -> Client:
    """The same address with another user agent: another client (a NAT, a second device)."""
    for _ in range(30):
        other = pool.pick(world.rng)
        if other.user_agent != client.user_agent:
            return Client(client.ip, other.user_agent, other.kind)
    return Client(client.ip, client.user_agent + " (Edition 2)", client.kind)


def fill_message(world: World, text: str) -> str:
    rng = world.rng
    n = rng.randint(2, 40)
    return text.format(n=n, m=n - rng.randint(1, 3), id=f"{rng.getrandbits(32):08x}")


@dataclass(frozen=True, slots=True)
class Spot:
    """Where a story happens: the API, the concrete path and its endpoint template."""

    api: str
    path: str
    endpoint: str


def new_request(
    world: World,
    spot: Spot,
    *,
    source: str,
    start_us: int,
    client: Client,
    method: str,
    status: int,
    profile: str,
    query: str = "",
    upstream: int | None = SAME,
    message: str | None = None,
    duration_us: int | None = None,
    cause: Cause | None = None,
) -> Request:
    return make_request(
        world.rng,
        world.next_seq(),
        source=source,
        api=spot.api,
        start_us=start_us,
        client=client,
        method=method,
        path=spot.path,
        endpoint=spot.endpoint,
        status=status,
        profile=profile,
        query=query,
        upstream=upstream,
        message=message,
        duration_us=duration_us,
        cause=cause,
    )


def read_back(world: World, spot: Spot, *, source: str, after_us: int, client: Client) -> Request:
    """The client reloads the resource after its 409 (what UIs and SDKs do)."""
    start = after_us + world.rng.randint(150_000, 2_500_000)
    return new_request(
        world,
        spot,
        source=source,
        start_us=start,
        client=client,
        method="GET",
        status=200,
        profile="read",
    )


def is_write(method: str) -> bool:
    return method in WRITE_METHODS
