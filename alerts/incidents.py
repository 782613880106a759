"""Alert changes -> messages: alerts that fire together become one incident, one message.

An incident opens when an alert starts firing and no incident of its channels is open. Every
alert (any rule, any scope) that starts firing while it is open joins it. Pure; `now` is passed in.

    opened --group_wait--> announced: one FIRING message listing every member so far
    a member joining within `group_interval` of the opening is the same problem fanning out: it
    joins quietly (listed in the RESOLVED message); one that starts firing later is a new problem
    --> an update message after its own group_wait (so an endpoint spike is never hidden by a
    global alert that has been firing for a while)
    still firing `repeat_interval` after the last message --> a repeat
    no member fires any more --> one RESOLVED message (nothing, if never announced), closed

So a spike seen by the global rule and by three endpoint rules pages once, and resolves once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from conflictradar.alerts.channels import Channel
from conflictradar.alerts.notifications import (
    AlertItem,
    Notification,
    Status,
    dashboard_link,
    item_from_dict,
)
from conflictradar.alerts.rules import Rule, Scope
from conflictradar.ingest.alert_settings import Grouping

if TYPE_CHECKING:
    from conflictradar.alerts.config import AlertConfig


def member(item: AlertItem) -> str:
    """An alert's identity inside an incident: rule and scope value."""
    return f"{item.rule}\x00{item.scope_value}"


@dataclass(frozen=True)
class Incident:
    """What the grouping remembers about one open incident; persisted in `alert_incidents`."""

    group: str  # the channels its rules send to
    id: str
    label: str  # the rule that opened it: names the messages
    opened: datetime
    announced: datetime | None = None
    last_sent: datetime | None = None
    items: tuple[AlertItem, ...] = ()  # the latest item of each member, in joining order
    told: frozenset[str] = frozenset()  # members some message already listed

    @property
    def firing(self) -> tuple[AlertItem, ...]:
        return tuple(i for i in self.items if i.status is Status.FIRING)

    def items_json(self) -> str:
        return json.dumps([asdict(i) for i in self.items], default=_encode, sort_keys=True)


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def items_from_json(text: str) -> tuple[AlertItem, ...]:
    return tuple(item_from_dict(raw) for raw in json.loads(text))


def _join(incident: Incident, item: AlertItem) -> Incident:
    key = member(item)
    kept = tuple(i for i in incident.items if member(i) != key)
    if len(kept) == len(incident.items):
        return replace(incident, items=(*incident.items, item))
    return replace(incident, items=tuple(item if member(i) == key else i for i in incident.items))


def _message(
    incident: Incident, now: datetime, new_id: Callable[[], str], link: str, *, repeat: bool = False
) -> Notification:
    items = tuple(replace(i, repeat=repeat and i.status is Status.FIRING) for i in incident.items)
    if len(items) == 1:
        link = items[0].link
    return Notification(new_id(), incident.label, now, items, link)


def advance(
    open_incidents: Mapping[str, Incident],
    changes: Iterable[tuple[str, AlertItem]],
    now: datetime,
    grouping: Grouping,
    repeat_s: Mapping[str, float],
    link: Callable[[datetime], str],
    new_id: Callable[[], str],
) -> tuple[dict[str, Incident], list[tuple[str, Notification]]]:
    """Fold one evaluation's alert changes (group, item) into the open incidents.

    Returns the incidents still open (by group) and the (group, notification) pairs to send.
    `repeat_s`: each group's repeat interval; `link(start)`: the dashboard from `start` to now.
    """
    incidents = dict(open_incidents)
    for group, item in changes:
        if item.repeat:
            continue  # repeats are the incident's business, below
        current = incidents.get(group)
        if current is None:
            if item.status is not Status.FIRING:
                continue  # resolving an alert of an incident already closed: nothing to say
            current = Incident(group, new_id(), item.rule, now)
        incidents[group] = _join(current, item)
    out: list[tuple[str, Notification]] = []
    wait = timedelta(seconds=grouping.wait_s)
    interval = timedelta(seconds=grouping.interval_s)
    for group, inc in list(incidents.items()):
        members = frozenset(member(i) for i in inc.items)
        if inc.announced is None or inc.last_sent is None:
            if not inc.firing:
                del incidents[group]  # over before anyone was told: the events record it
            elif now - inc.opened >= wait:
                out.append((group, _message(inc, now, new_id, link(inc.opened))))
                incidents[group] = replace(inc, announced=now, last_sent=now, told=members)
            continue
        if not inc.firing:
            out.append((group, _message(inc, now, new_id, link(inc.opened))))
            del incidents[group]
            continue
        # Fan-out of the same problem joins quietly; a member that starts firing a group interval
        # or more into the incident is a new problem, announced after its own group wait.
        fresh = [
            i
            for i in inc.firing
            if member(i) not in inc.told
            and i.starts_at - inc.opened >= interval
            and now - i.starts_at >= wait
        ]
        if fresh:
            out.append((group, _message(inc, now, new_id, link(inc.opened))))
            incidents[group] = replace(inc, last_sent=now, told=members)
        elif now - inc.last_sent >= timedelta(seconds=repeat_s.get(group, 4 * 3600.0)):
            out.append((group, _message(inc, now, new_id, link(inc.opened), repeat=True)))
            incidents[group] = replace(inc, last_sent=now, told=members)
    return incidents, out


@dataclass(frozen=True)
class ChannelGroups:
    """Rules that send to the same channels share incidents; each group's repeat interval."""

    repeat_s: Mapping[str, float]

    @staticmethod
    def of(rule: Rule) -> str:
        return "*" if rule.channels is None else ",".join(sorted(rule.channels))

    @staticmethod
    def channels(group: str, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if group == "*":
            return channels
        names = set(group.split(",")) if group else set()
        return tuple(c for c in channels if c.name in names)


def channel_groups(rules: Iterable[Rule]) -> ChannelGroups:
    repeat: dict[str, float] = {}
    for rule in rules:
        group = ChannelGroups.of(rule)
        repeat[group] = min(repeat.get(group, rule.repeat_interval_s), rule.repeat_interval_s)
    return ChannelGroups(repeat)


def advance_incidents(
    open_incidents: Mapping[str, Incident],
    changes: Iterable[tuple[str, AlertItem]],
    now: datetime,
    config: AlertConfig,
    groups: ChannelGroups,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> tuple[dict[str, Incident], list[tuple[str, Notification]]]:
    """`advance` with the configured grouping, and links to the dashboard over the incident."""
    window = timedelta(seconds=max((r.window_s for r in config.rules), default=60.0))

    def link(start: datetime) -> str:
        return dashboard_link(config.dashboard_url, start - window, now, Scope.GLOBAL, "")

    return advance(open_incidents, changes, now, config.grouping, groups.repeat_s, link, new_id)
