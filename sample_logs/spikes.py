"""Conflict spikes: when they happen, which scope they hit, and the stories that fill them.

Batch runs place a few spikes (one global, three on single endpoints) with quiet hours between
them; live runs start one every `spike_every_s`, cycling through the same scopes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from conflictradar.sample_logs import races, rejections, retries
from conflictradar.sample_logs.model import SECOND, Request, Spike
from conflictradar.sample_logs.scenarios import World, split_spec

GLOBAL = "global"
ORDERS = "/orders/{id}"
CAPTURE = "/payments/{id}/capture"
FINALIZE = "/invoices/{id}/finalize"
SCOPES = (ORDERS, GLOBAL, CAPTURE, FINALIZE)
MIN_SPIKE_CONFLICTS = 40  # a spike stands out even in a small sample...


def min_conflicts(lines: int) -> int:
    """...but does not swamp a tiny one."""
    return max(5, min(MIN_SPIKE_CONFLICTS, lines // 150))


_ORDER_RACES = [r for r in races.ROWS if split_spec(r.loser)[1] == ORDERS]
_CAPTURE_RETRY = next(r for r in retries.ROWS if split_spec(r.spec)[1] == CAPTURE)


def build_story(world: World, scope: str, t0: int) -> list[Request]:
    """One story of an endpoint spike (the global spike just speeds up the usual mix)."""
    if scope == ORDERS:
        row = world.rng.choices(_ORDER_RACES, [r.weight for r in _ORDER_RACES])[0]
        return races.build(world, row, t0, "normal")
    if scope == CAPTURE:
        return retries.build(world, _CAPTURE_RETRY, t0, "normal")
    if scope == FINALIZE:
        return rejections.build(world, rejections.FINALIZE_LOCKED, t0)
    raise ValueError(f"no spike stories for scope {scope!r}")


def batch_plan(rng: random.Random, start_us: int, span_us: int) -> list[Spike]:
    """Four spikes spread over the span, 6-9 minutes each, whole minutes, in a seeded order."""
    scopes = list(SCOPES)
    rng.shuffle(scopes)
    plan = []
    for fraction, scope in zip((0.2, 0.42, 0.63, 0.84), scopes, strict=True):
        at = start_us + int(span_us * (fraction + rng.uniform(-0.02, 0.02)))
        at -= at % (60 * SECOND)
        plan.append(Spike(at, at + rng.randint(6, 9) * 60 * SECOND, scope))
    return plan


def live_plan(start_us: int, every_us: int, until_us: int) -> list[Spike]:
    """Spike k starts k * every after the start, lasts a third of the gap (1 s to 2 min).

    Starts and lengths are whole seconds, so spikes.csv names each window exactly.
    """
    length = max(SECOND, min(120 * SECOND, every_us // 3) // SECOND * SECOND)
    plan = []
    k = 1
    while start_us + k * every_us < until_us:
        at = start_us + k * every_us
        at -= at % SECOND
        plan.append(Spike(at, at + length, SCOPES[(k - 1) % len(SCOPES)]))
        k += 1
    return plan


def story_rate(
    scope: str, base_rate: float, share: Callable[[str], float], spike: Spike, least: int
) -> float:
    """Stories per second during an endpoint spike: 12x usual, and `least` in the window."""
    seconds = (spike.end_us - spike.start_us) / SECOND
    return max(12.0 * base_rate * share(scope), least / seconds)


def global_factor(base_rate: float, spike: Spike, least: int) -> float:
    """How much the usual conflict mix speeds up during a global spike (12x, or more)."""
    seconds = (spike.end_us - spike.start_us) / SECOND
    return max(12.0, least / max(base_rate * seconds, 1e-9))
