"""Settings -> evaluation: what an alert rule says (scope, detector, timing) and the defaults.

A rule is plain data; `alerts.config` builds it from `[[alerts.rules]]` and validates it, the
detectors and the lifecycle read it. Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """What a rule counts 409s per: all of them, each endpoint template, or each cause."""

    GLOBAL = "global"
    ENDPOINT = "endpoint"
    CAUSE = "cause"


class DetectorKind(StrEnum):
    BASELINE = "baseline"
    THRESHOLD = "threshold"


@dataclass(frozen=True)
class Rule:
    """One `[[alerts.rules]]` entry, every key resolved."""

    name: str
    scope: Scope = Scope.GLOBAL
    detector: DetectorKind = DetectorKind.BASELINE
    window_s: float = 300.0
    # The floor below which nothing fires, whatever the baseline says: on a quiet endpoint a
    # jump from 1 to 3 is a huge relative change and means nothing.
    min_count: int = 10
    for_s: float = 30.0
    # None: every configured channel. An empty tuple: record events, notify nobody.
    channels: tuple[str, ...] | None = None
    # Baseline: the same window at `history_step_s` (default: one window) steps back, this many
    # times; "1d" compares with the same time on previous days.
    history: int = 12
    history_step_s: float | None = None
    # How many robust standard deviations above the history median count as a spike.
    deviation: float = 3.5
    # Stay firing until the condition has been false this long (damps resolve/fire churn).
    resolve_after_s: float = 120.0
    repeat_interval_s: float = 4 * 3600.0
    # Flap damping: `flap_count` starts within `flap_window_s` make the alert flapping; a flapping
    # alert resolves only after `flap_resolve_after_s` of quiet.
    flap_window_s: float = 3600.0
    flap_count: int = 3
    flap_resolve_after_s: float = 900.0
    severity: str = "warning"
    # How many causes / resources / endpoints a message lists.
    top: int = 3

    @property
    def step_s(self) -> float:
        return self.history_step_s if self.history_step_s is not None else self.window_s


# When no rules are configured: one spike rule over all 409s and one per endpoint. Both use the
# baseline detector with a floor, so a quiet service's occasional 409 never pages anyone.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="409 spike", scope=Scope.GLOBAL, min_count=20),
    Rule(name="409 spike per endpoint", scope=Scope.ENDPOINT, min_count=10),
)
