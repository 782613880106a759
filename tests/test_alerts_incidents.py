"""Incident grouping: alerts that fire together (any rule, any scope) make one message."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from conflictradar.alerts.incidents import Incident, advance
from conflictradar.alerts.notifications import AlertItem, Notification, Status
from conflictradar.alerts.rules import Scope
from conflictradar.ingest.alert_settings import Grouping

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
GROUPING = Grouping(wait_s=20, interval_s=300)


def item(rule: str, key: str, status: Status = Status.FIRING, at: float = 0) -> AlertItem:
    ts = T0 + timedelta(seconds=at)
    return AlertItem(
        rule=rule,
        scope=Scope.GLOBAL if not key else Scope.ENDPOINT,
        scope_value=key,
        status=status,
        value=30,
        baseline=0.04,
        score=9.0,
        window_s=60,
        min_count=10,
        severity="warning",
        starts_at=ts,
        ends_at=ts if status is Status.RESOLVED else None,
        evaluated_at=ts,
        reason="r",
        link="http://x/",
        rate=0.3,
        requests=100,
    )


class Run:
    """Feeds evaluations every few seconds; keeps the open incidents and what was sent."""

    def __init__(self) -> None:
        self.open: dict[str, Incident] = {}
        self.sent: list[tuple[float, Notification]] = []
        self.ids = (f"id-{i}" for i in itertools.count())

    def at(self, seconds: float, *changes: AlertItem) -> None:
        now = T0 + timedelta(seconds=seconds)
        self.open, out = advance(
            self.open,
            [("*", c) for c in changes],
            now,
            GROUPING,
            {"*": 3600.0},
            lambda start: "http://x/",
            lambda: next(self.ids),
        )
        self.sent.extend((seconds, n) for _, n in out)

    def quiet(self, start: float, end: float) -> None:
        for s in range(int(start), int(end), 5):
            self.at(s)

    def summary(self) -> list[tuple[float, str, list[str]]]:
        return [
            (s, n.status.value, [f"{a.rule}:{a.scope_value}:{a.status.value}" for a in n.alerts])
            for s, n in self.sent
        ]


def test_a_global_spike_on_three_endpoints_pages_once_and_resolves_once() -> None:
    r = Run()
    r.at(0, item("global", ""))
    r.at(5, item("endpoint", "/orders/{id}", at=5))
    r.at(12, item("endpoint", "/carts/{id}", at=12))
    r.quiet(15, 60)
    r.at(60, item("endpoint", "/orders/{id}", Status.RESOLVED, 60))
    r.at(65, item("global", "", Status.RESOLVED, 65))
    r.quiet(66, 90)
    assert r.sent and r.open  # /carts/{id} still fires: not resolved yet
    r.at(90, item("endpoint", "/carts/{id}", Status.RESOLVED, 90))
    assert r.summary() == [
        (20, "firing", ["global::firing", "endpoint:/orders/{id}:firing",
                        "endpoint:/carts/{id}:firing"]),
        (90, "resolved", ["global::resolved", "endpoint:/orders/{id}:resolved",
                          "endpoint:/carts/{id}:resolved"]),
    ]  # fmt: skip
    assert r.open == {}


def test_an_endpoint_spike_during_a_long_global_alert_is_announced() -> None:
    r = Run()
    r.at(0, item("global", ""))
    r.quiet(5, 100)
    r.at(100, item("endpoint", "/carts/{id}", at=100))  # fan-out: joins quietly
    r.quiet(105, 400)
    r.at(400, item("endpoint", "/orders/{id}", at=400))  # a new problem, minutes later
    r.quiet(405, 500)
    assert [s for s, _ in r.sent] == [20, 420]  # announced after its own group wait
    update = r.sent[1][1]
    assert [a.scope_value for a in update.alerts if a.status is Status.FIRING] == [
        "",
        "/carts/{id}",
        "/orders/{id}",
    ]


def test_a_member_that_joins_and_ends_between_messages_is_in_the_resolved_message() -> None:
    r = Run()
    r.at(0, item("global", ""))
    r.quiet(5, 60)
    r.at(60, item("endpoint", "/orders/{id}", at=60))
    r.at(90, item("endpoint", "/orders/{id}", Status.RESOLVED, 90))
    r.at(120, item("global", "", Status.RESOLVED, 120))
    assert [(s, n.status.value, len(n.alerts)) for s, n in r.sent] == [
        (20, "firing", 1),
        (120, "resolved", 2),
    ]


def test_an_alert_over_before_the_group_wait_sends_nothing_and_repeats_are_per_incident() -> None:
    r = Run()
    r.at(0, item("global", ""))
    r.at(10, item("global", "", Status.RESOLVED, 10))
    r.quiet(15, 60)
    assert r.sent == [] and r.open == {}
    r.at(100, item("global", "", at=100))
    r.at(120)
    r.at(3700, replace(item("global", "", at=3700), repeat=True))  # ignored: incident repeats
    r.at(3720)
    assert [(s, n.alerts[0].repeat) for s, n in r.sent] == [(120, False), (3720, True)]
