"""The generator's clock: background traffic and conflict stories, in time order, batch or live.

Stories are planned LOOKAHEAD ahead of the background traffic, so every background request is
checked against every labelled 409 whose rule windows it could reach (see `history`). Batch and
live mode run the same `step`; only the clock and the spike plan differ.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from conflictradar.sample_logs import races, rejections, retries, spikes
from conflictradar.sample_logs.clients import build_pools
from conflictradar.sample_logs.history import LOOKAHEAD_US
from conflictradar.sample_logs.model import SECOND, Request, Spike
from conflictradar.sample_logs.resources import Resources
from conflictradar.sample_logs.scenarios import World, split_spec
from conflictradar.sample_logs.spikes import MIN_SPIKE_CONFLICTS
from conflictradar.sample_logs.timing import diurnal
from conflictradar.sample_logs.traffic import background, pick_route

CONFLICT_SHARE = 0.04  # 409s among all lines outside spikes
CONFLICTS_PER_STORY = 1.05
LINES_PER_STORY = 2.7
OVERSAMPLE = 1.06  # batch draws a little extra background, then trims to exactly `lines`

SHOWCASE_CHANCE = 0.12  # share of the first stories that come from the showcase list


class _Row(Protocol):
    """What the mix needs of a race, retry or rejection row."""

    @property
    def spec(self) -> str: ...

    @property
    def weight(self) -> float: ...


_Builder = Callable[..., list[Request]]
_FAMILIES: tuple[tuple[float, _Builder, tuple[_Row, ...]], ...] = (
    (0.25, races.build, races.ROWS),
    (0.17, retries.build, retries.ROWS),
    (0.58, rejections.build, rejections.ROWS),
)


def _template(row: _Row) -> str:
    return split_spec(row.spec)[1]


def scope_share(scope: str) -> float:
    """Share of ordinary stories whose 409 is on the endpoint `scope`."""
    total = 0.0
    for share, _, rows in _FAMILIES:
        weights = sum(r.weight for r in rows)
        total += share * sum(r.weight for r in rows if _template(r) == scope) / weights
    return total


def _row(rows: tuple[_Row, ...], spec: str) -> _Row:
    return next(r for r in rows if r.spec == spec)


def showcase() -> list[tuple[_Builder, _Row, str]]:
    """Every edge and near-miss variant at least once per run, whatever its size."""
    near = ("edge_in", "edge_out")
    plan: list[tuple[_Builder, _Row, str]] = []
    race_cases: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("PATCH /orders/{id}", (*near, "nat", "same_client", "winner_read", "winner_failed")),
        ("PATCH /orders/{id}", ("cross_query",)),
        ("PATCH /v1/skus/{id}/stock", (*near, "late_winner")),
        ("PUT /invoices/{id}", near),
    )
    for spec, variants in race_cases:
        plan.extend((races.build, _row(races.ROWS, spec), v) for v in variants)
    retry_cases: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("POST /orders/{id}/cancel", (*near, "other_ua", "first_failed", "double")),
        ("POST /v1/reservations/{id}/confirm", near),
        ("POST /invoices/{id}/finalize", near),
    )
    for spec, variants in retry_cases:
        plan.extend((retries.build, _row(retries.ROWS, spec), v) for v in variants)
    return plan


def _story(e: Engine, t0: int) -> list[Request]:
    world, rng = e.world, e.world.rng
    if e.showcase and rng.random() < SHOWCASE_CHANCE:
        build, row, variant = e.showcase.pop(0)
        return build(world, row, t0, variant)
    _, build, rows = rng.choices(_FAMILIES, [f[0] for f in _FAMILIES])[0]
    row = rng.choices(rows, [r.weight for r in rows])[0]
    return build(world, row, t0)


@dataclass
class Engine:
    """Generator state between steps (mutable)."""

    world: World
    bg_rate: float  # background requests per second at the daily mean
    story_rate: float  # conflict stories per second at the daily mean
    daily: bool  # follow the day's rhythm (batch) or stay flat (live)
    spikes: list[Spike]
    next_bg: int
    next_story: int
    live_every_us: int = 0
    stories_until: int | None = None  # no new stories from here on (end of a batch span)
    spike_next: dict[int, int] = field(default_factory=dict)
    forgotten_at: int = 0
    rhythm_scale: float = 1.0  # makes the day's rhythm average 1 over the span
    spike_least: int = MIN_SPIKE_CONFLICTS  # conflicts a spike adds at the very least
    showcase: list[tuple[_Builder, _Row, str]] = field(default_factory=showcase)

    def rhythm(self, t: int) -> float:
        return diurnal(t) * self.rhythm_scale if self.daily else 1.0


def new_engine(
    seed: int,
    *,
    start_us: int,
    lines_per_s: float,
    daily: bool,
    spike_plan: list[Spike],
    live_every_us: int = 0,
) -> Engine:
    rng = random.Random(seed)
    scale = int(lines_per_s * 86_400 if daily else lines_per_s * 3_600)
    world = World(rng, build_pools(rng, scale), Resources(rng, scale), start_us=start_us)
    story_rate = CONFLICT_SHARE * lines_per_s / CONFLICTS_PER_STORY
    bg_rate = max(0.2 * lines_per_s, lines_per_s - story_rate * LINES_PER_STORY)
    return Engine(
        world=world,
        bg_rate=bg_rate,
        story_rate=story_rate,
        daily=daily,
        spikes=spike_plan,
        next_bg=start_us,
        next_story=start_us,
        live_every_us=live_every_us,
        forgotten_at=start_us,
    )


def _boundaries(e: Engine, t: int) -> int | None:
    """The next start or end of a global spike after `t` (arrival rates change there)."""
    edges = [b for s in e.spikes if s.scope == spikes.GLOBAL for b in (s.start_us, s.end_us)]
    later = [b for b in edges if b > t]
    return min(later) if later else None


def _story_rate(e: Engine, t: int) -> float:
    rate = e.story_rate * e.rhythm(t)
    for s in e.spikes:
        if s.scope == spikes.GLOBAL and s.start_us <= t < s.end_us:
            rate *= spikes.global_factor(e.story_rate * e.rhythm(s.start_us), s, e.spike_least)
    return rate


def _next_story(e: Engine, t: int) -> int:
    rng = e.world.rng
    while True:
        gap = int(rng.expovariate(_story_rate(e, t)) * SECOND) + 1
        edge = _boundaries(e, t)
        if edge is None or t + gap <= edge:
            return t + gap
        t = edge  # memoryless: redraw from the boundary with the new rate


def step(e: Engine, until_us: int) -> tuple[list[Request], list[Request]]:
    """Advance to `until_us`: (story requests, background requests) created by this step.

    Story requests may lie up to LOOKAHEAD (plus their own length) after `until_us`.
    """
    world, rng = e.world, e.world.rng
    horizon = until_us + LOOKAHEAD_US
    if e.live_every_us:
        e.spikes = spikes.live_plan(world.start_us, e.live_every_us, horizon + 600 * SECOND)
    if e.stories_until is not None:
        horizon = min(horizon, e.stories_until)
    stories: list[Request] = []
    while e.next_story < horizon:
        stories.extend(_story(e, e.next_story))
        e.next_story = _next_story(e, e.next_story)
    for i, spike in enumerate(e.spikes):
        if spike.scope == spikes.GLOBAL or spike.start_us >= horizon:
            continue
        base = e.story_rate * e.rhythm(spike.start_us)
        rate = spikes.story_rate(spike.scope, base, scope_share, spike, e.spike_least)
        t = e.spike_next.get(i, spike.start_us)
        while t < min(horizon, spike.end_us):
            stories.extend(spikes.build_story(world, spike.scope, t))
            t += int(rng.expovariate(rate) * SECOND) + 1
        e.spike_next[i] = t
    back: list[Request] = []
    while e.next_bg < until_us:
        t = e.next_bg
        route = pick_route(rng)
        for attempt in range(4):
            req = background(
                rng, world.pools, world.resources, world.next_seq(), t, route, fresh=attempt > 0
            )
            if not world.history.disturbs(req):
                back.append(req)
                break
        e.next_bg = t + int(rng.expovariate(e.bg_rate * e.rhythm(t)) * SECOND) + 1
    if until_us - e.forgotten_at > 30 * SECOND:
        world.history.forget(until_us - 60 * SECOND)
        e.forgotten_at = until_us
    return stories, back


def simulate(
    seed: int, lines: int, start_us: int, hours: float, *, daily: bool = True
) -> tuple[list[Request], list[Spike]]:
    """A whole batch run: exactly `lines` requests (when the draw allows) and the spike plan.

    `daily=False`: flat traffic, as live mode writes it (the demo's backfill, so the rate does not
    jump where live traffic takes over)."""
    span_us = int(hours * 3600 * SECOND)
    lines_per_s = lines / (span_us / SECOND)
    plan = spikes.batch_plan(random.Random(seed ^ 0x5EED), start_us, span_us)
    e = new_engine(seed, start_us=start_us, lines_per_s=lines_per_s, daily=daily, spike_plan=plan)
    e.spike_least = spikes.min_conflicts(lines)
    spike_lines = len(plan) * e.spike_least * LINES_PER_STORY
    e.bg_rate = max(e.bg_rate - spike_lines / (span_us / SECOND), 0.2 * lines_per_s) * OVERSAMPLE
    e.stories_until = start_us + span_us
    minutes = range(start_us, start_us + span_us, 60 * SECOND)
    e.rhythm_scale = len(minutes) / sum(diurnal(t) for t in minutes)
    stories: list[Request] = []
    back: list[Request] = []
    t = start_us
    while t < start_us + span_us:
        t = min(t + 10 * SECOND, start_us + span_us)
        s, b = step(e, t)
        stories.extend(s)
        back.extend(b)
    excess = len(stories) + len(back) - lines
    if excess > 0:  # background requests are independent of every label: any can go
        drop = set(e.world.rng.sample(range(len(back)), min(excess, len(back))))
        back = [r for i, r in enumerate(back) if i not in drop]
    return stories + back, plan
