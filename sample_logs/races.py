"""Race scenarios: two clients write the same resource; the later PUT/PATCH/DELETE loses with a 409.

Variants cover SPEC rule 3 letter by letter: the winner on the other gateway node, a winner that
finishes (and is logged) after the loser, a winner exactly 5 s before (a race) or just outside
(not a race), two browsers behind one NAT address (different clients), the same client changing
method (not a race), and near misses where the other client only read or failed its write.
"""

from __future__ import annotations

from dataclasses import dataclass

from conflictradar.sample_logs.model import FILE_BY_NAME, Cause, Request
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

V = Cause.VERSION_MISMATCH


@dataclass(frozen=True, slots=True)
class RaceRow:
    api: str
    loser: str  # "METHOD template" of the losing request
    kinds: str
    winners: tuple[str, ...]  # methods the winning write may use
    weight: float
    who: str = "user"
    messages: tuple[Message, ...] = ()  # the loser's error text, where the format logs one
    path_fmt: str = ""
    query: str = ""  # loser's query (S3 subresource)
    winner_query: str = ""
    reads: bool = True  # both clients read the resource first

    @property
    def spec(self) -> str:
        return self.loser


# fmt: off
ROWS: tuple[RaceRow, ...] = (
    RaceRow("orders", "PATCH /orders/{id}", "order", ("PATCH", "PUT"), 9),
    RaceRow("orders", "PUT /orders/{id}/shipping-address", "order", ("PUT",), 3),
    RaceRow("orders", "DELETE /orders/{id}", "order", ("PATCH",), 1.5),
    RaceRow("orders", "DELETE /orders/{id}/items/{id}", "order item", ("DELETE", "PATCH"), 1.5),
    RaceRow("payments", "PATCH /payments/{id}", "payment", ("PATCH",), 2.5, "service", (
        ("Version mismatch: expected version {n}, got {m}", V), ("-", None),
        ("Payment was updated by another request", None))),
    RaceRow("inventory", "PATCH /v1/skus/{id}/stock", "sku", ("PATCH",), 6, "scanner"),
    RaceRow("inventory", "PUT /v1/skus/{id}", "sku", ("PUT", "PATCH"), 1.5, "service"),
    RaceRow("documents", "PUT /documents/{id}", "document", ("PUT",), 4, "web"),
    RaceRow("documents", "DELETE /documents/{id}", "document", ("PUT",), 0.8, "web"),
    RaceRow("users", "PATCH /users/{id}/profile", "user", ("PATCH",), 3),
    RaceRow("users", "PUT /users/{id}/preferences", "user", ("PUT",), 1),
    RaceRow("files", "PUT /acme-uploads/tenants/{id}/uploads/{id}.pdf", "tenant upload",
            ("PUT",), 2, "s3", (("ConditionalRequestConflict", None),), reads=False),
    RaceRow("files", "PUT /acme-uploads", "", ("PUT",), 0.8, "s3", (("OperationAborted", Cause.RESOURCE_LOCKED),),
            query="lifecycle", winner_query="policy", reads=False),
    RaceRow("billing", "PUT /invoices/{id}", "invoice", ("PUT", "PATCH"), 2, "admin", (
        ("ETag does not match current representation", V),
        ("Invoice is being updated by another request", Cause.RESOURCE_LOCKED),
        ("Conflict", None))),
    RaceRow("billing", "PATCH /subscriptions/{id}", "subscription", ("PATCH",), 1.2, "admin",
            (("Stale revision {n}; reload the subscription", V),)),
)
# fmt: on

# variant -> weight; edge variants need an exact-time format (see timing.EXACT_FORMATS)
# fmt: off
VARIANTS = {
    "normal": 62, "cross_query": 5, "late_winner": 8, "nat": 5, "edge_in": 4, "edge_out": 4,
    "same_client": 4, "winner_read": 4, "winner_failed": 4,
}
# fmt: on
IN_VARIANTS = ("normal", "cross_query", "late_winner", "nat", "edge_in")
# Formats that stamp a line with the request's start for every parser (a slow winner's line
# lands after its loser's while its time is still earlier).
START_STAMPED = ("traefik", "apigw", "s3")


def build(world: World, row: RaceRow, t0: int, variant: str | None = None) -> list[Request]:
    """A committed race story starting at `t0`, or [] when none could be placed soundly."""
    chosen = variant or pick_variant(world, VARIANTS)
    return commit(world, lambda: _draw(world, row, t0, chosen))


def _draw(world: World, row: RaceRow, t0: int, variant: str) -> list[Request] | None:
    rng = world.rng
    method, template = split_spec(row.loser)
    kinds = row.kinds.split()
    fresh = rng.random() < 0.5
    ids = [world.resources.fresh(k, t0) if fresh else world.resources.pick(k, t0) for k in kinds]
    path = (row.path_fmt or template.replace("{id}", "{}")).format(*ids)
    src_w, src_l = two_sources(world, row.api, 0.65)  # the loser may be on the other node
    if variant in ("edge_in", "edge_out") and not (exact(src_w) and exact(src_l)):
        variant = "normal"
    if variant == "late_winner" and FILE_BY_NAME[src_w].format not in START_STAMPED:
        variant = "normal"  # end-stamped lines cannot show a winner logged after its loser
    if variant == "same_client" and row.api == "files":
        variant = "normal"
    pool = world.pools[row.who]
    winner = pool.pick(rng)
    loser = pool.other(rng, winner)
    if variant == "nat":
        loser = other_ua(world, pool, winner)
    if variant == "same_client":
        loser = winner
    spot = Spot(row.api, path, template)
    story: list[Request] = []

    if row.reads and t0 - 20_000_000 > world.start_us:
        for who, src in ((winner, src_w), (loser, src_l)):
            story.append(
                new_request(
                    world,
                    spot,
                    source=src,
                    start_us=t0 - rng.randint(1_000_000, 15_000_000),
                    client=who,
                    method="GET",
                    status=200,
                    profile="read",
                )
            )

    w_method = rng.choice(row.winners)
    w_status = rng.choice((200, 200, 204))
    if variant == "same_client":
        w_method = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m != method)
    elif variant == "winner_read":
        w_method, w_status = "GET", 200
    elif variant == "winner_failed":
        w_status = rng.choice((412, 422, 400))
    w_query = row.winner_query
    if variant == "cross_query" and not w_query:
        w_query = rng.choice(("expand=items", "notify=false", "fields=status"))
    w_duration = rng.randint(2_000_000, 4_500_000) if variant == "late_winner" else None
    won = new_request(
        world,
        spot,
        source=src_w,
        start_us=t0,
        client=winner,
        method=w_method,
        status=w_status,
        profile="update",
        query=w_query,
        duration_us=w_duration,
    )
    story.append(won)

    l_duration = rng.randint(4_000, 60_000)
    if variant in ("edge_in", "edge_out"):
        on_edge, past_edge = edge_deltas(src_l, 5)
        target = stamps(won)[0] + (on_edge if variant == "edge_in" else past_edge)
        l_start = start_for_stamp(src_l, target, l_duration, rng.randrange(1_000_000))
    elif variant == "late_winner":
        l_start = t0 + rng.randint(300_000, 1_400_000)  # while the winner is still responding
    else:
        l_start = won.end_us + rng.randint(30_000, 3_200_000)
    text, msg_cause = rng.choice(row.messages) if row.messages else (None, None)
    message = None if text in (None, "-") else fill_message(world, str(text))
    cause = (
        Cause.CONCURRENT_UPDATE
        if variant in IN_VARIANTS
        else fallback_cause(method, path, msg_cause if message else None)
    )
    lost = new_request(
        world,
        spot,
        source=src_l,
        start_us=l_start,
        client=loser,
        method=method,
        status=409,
        profile="update",
        query=row.query,
        message=message,
        duration_us=l_duration,
        cause=cause,
    )
    story.append(lost)
    if row.reads:
        story.append(read_back(world, spot, source=src_l, after_us=lost.end_us, client=loser))
    return story
