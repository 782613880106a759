"""CLI -> alerts: `alerts test`, `alerts check` and `alerts backtest`, as functions the CLI wires.

Each returns an exit code and writes its report to `out` (stdout); foreseeable failures raise the
ingest error tree (ConfigError, UsageError, DatabaseError) for the CLI to print as one sentence.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from conflictradar.alerts.backtest import Backtest
from conflictradar.alerts.backtest import run as run_replay
from conflictradar.alerts.config import AlertConfig, load_alert_config
from conflictradar.alerts.detectors import window_text
from conflictradar.alerts.engine import AlertEngine, Reads, utc_now
from conflictradar.alerts.evaluation import Event
from conflictradar.alerts.lifecycle import AlertState
from conflictradar.alerts.notifications import iso, make_test_notification
from conflictradar.alerts.outbox import DeliveryState, Settled
from conflictradar.ingest.errors import ConfigError, UsageError
from conflictradar.ingest.reader import Reader
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.store import Store

# `alerts check` exits with this while an alert is firing (docs/cli.md; 1 stays "error").
EXIT_FIRING = 3

_RELATIVE = re.compile(r"^\s*-?\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*(?:ago)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, now: datetime, option: str = "--since") -> datetime:
    """`2025-06-02T13:00:00Z`, `2025-06-02` (UTC midnight), `now`, or `2h` / `-2h` / `2h ago`."""
    value = text.strip()
    if value == "now":
        return now
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a time; use ISO 8601 like "
            "2025-06-02T13:00:00Z, or a span ago like 2h or 7d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_step(text: str, option: str = "--step") -> timedelta:
    match = _RELATIVE.match(text) if not text.strip().startswith("-") else None
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"{option} {text!r} is not a positive duration; use e.g. 30s, 1m or 5m")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def _report(s: Settled, kind: str, out: TextIO) -> None:
    mark = {"delivered": "ok  ", "queued": "wait", "sending": "wait"}.get(s.state.value, "FAIL")
    detail = s.error or ""
    status = f"HTTP {s.status}" if s.status is not None and "HTTP" not in detail else ""
    if s.state is DeliveryState.QUEUED and s.next_attempt_at is not None:
        detail = (
            f"{detail}; still retrying (next attempt {iso(s.next_attempt_at)}, kept in the outbox)"
        )
    text = ", ".join(p for p in (s.state.value, status, detail) if p)
    out.write(f"{mark} {s.channel} ({kind}): {text} [attempt {s.attempt}]\n")


def run_test(
    settings: Settings,
    store: Store,
    out: TextIO,
    *,
    env: Mapping[str, str] | None = None,
    wait_s: float = 30.0,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    """Send a clearly marked test notification through every configured channel; 0 if all got it."""
    config = load_alert_config(settings, env)
    _require_channels(config)
    with AlertEngine(settings, store, config=config, clock=clock) as engine:
        return send_test(engine, out, wait_s)


def _require_channels(config: AlertConfig) -> None:
    if not config.channels:
        raise ConfigError(
            "no alert channels are configured; add an [alerts.channels.NAME] table "
            "with type and url_env to conflictradar.toml"
        )


def send_test(engine: AlertEngine, out: TextIO, wait_s: float) -> int:
    """`alerts test` on an engine (this process's, or the watcher's own): queue the test message
    for every channel, wait up to `wait_s` for each delivery to settle, report; 0 if all got it."""
    config = engine.config
    _require_channels(config)
    now = engine.clock()
    n = make_test_notification(str(uuid.uuid4()), now, config.dashboard_url)
    keys = engine.queue(n, now, max_age_s=wait_s)
    results = engine.settle(set(keys), wait_s + 1.0)
    ok = True
    for channel, key in zip(config.channels, keys, strict=True):
        s = results.get(key)
        if s is None:
            out.write(
                f"FAIL {channel.name} ({channel.kind.value}): not attempted (an earlier "
                "delivery to this channel is still queued)\n"
            )
            ok = False
            continue
        _report(s, channel.kind.value, out)
        ok &= s.state is DeliveryState.DELIVERED
    return 0 if ok else 1


def _event_line(e: Event) -> str:
    state = e.state.value.upper() if e.notify else e.state.value
    if e.repeat:
        state += " (repeat)"
    return f"{iso(e.ts)}  {state:<18} {e.message}"


def run_check(
    settings: Settings,
    store: Store,
    now: datetime,
    out: TextIO,
    *,
    env: Mapping[str, str] | None = None,
    wait_s: float = 30.0,
    clock: Callable[[], datetime] = utc_now,
    reads: Reads | None = None,
) -> int:
    """Evaluate every rule once at `now` and deliver what fires (waiting up to `wait_s` for
    retries); 1 if a delivery was refused or given up, else EXIT_FIRING while an alert is
    firing, else 0. `reads`: count from elsewhere (a lake), keep the state in `store`."""
    config = load_alert_config(settings, env)
    # Once, now: nobody evaluates again soon to announce an incident after a group wait.
    config = replace(config, grouping=replace(config.grouping, wait_s=0.0))
    with AlertEngine(settings, store, config=config, clock=clock, reads=reads) as engine:
        return check_now(engine, now, out, wait_s, own_outbox=True)


def check_now(
    engine: AlertEngine, now: datetime, out: TextIO, wait_s: float, *, own_outbox: bool
) -> int:
    """`alerts check` on an engine: evaluate at `now`, wait up to `wait_s` for deliveries, report.

    `own_outbox`: this process sends everything due (the standalone command); otherwise (the
    watcher's engine) its sender does, and this waits for what this evaluation queued."""
    events, queued = engine.evaluate_queued(now)
    results = engine.settle(None if own_outbox else queued, wait_s)
    if not own_outbox:  # and what the watcher is still retrying, as a standalone check shows it
        results = {**engine.open_states(), **results}
    still_open = engine.open_deliveries()
    firing = engine.firing()
    rules = ", ".join(r.name for r in engine.config.rules)
    out.write(f"evaluated {len(engine.config.rules)} rules at {iso(now)}: {rules}\n")
    for e in events:
        out.write(_event_line(e) + "\n")
    if not events:
        out.write("no alert changed state\n")
    kinds = {c.name: c.kind.value for c in engine.config.channels}
    for s in results.values():
        _report(s, kinds.get(s.channel, "?"), out)
    held = [e for e in events if e.notify and e.notification_id is None]
    if held and not own_outbox:  # the watcher's grouping: one message per incident, a bit later
        wait = window_text(engine.config.grouping.wait_s)
        out.write(
            f"{len(held)} changes join an incident the watcher announces after group_wait"
            f" ({wait}) or has announced already\n"
        )
    if still_open:
        out.write(
            f"{still_open} deliveries are still queued; `conflictradar watch` or the next "
            "`alerts check` retries them\n"
        )
    failed = [
        s for s in results.values() if s.state in (DeliveryState.REJECTED, DeliveryState.GAVE_UP)
    ]
    if firing:
        out.write(f"{firing} alerts firing\n")
    return 1 if failed else EXIT_FIRING if firing else 0


def print_timeline(result: Backtest, out: TextIO) -> None:
    step = window_text(result.step.total_seconds())
    out.write(
        f"backtest {iso(result.since)} .. {iso(result.until)} every {step} "
        "(nothing sent, nothing written)\n"
    )
    cleared = 0
    for e in result.events:
        if e.state is AlertState.INACTIVE:
            cleared += 1
            continue
        if e.state is AlertState.PENDING:
            continue
        out.write(_event_line(e) + "\n")
        if e.state is AlertState.FIRING and not e.repeat:
            item = next(
                (
                    a
                    for n in result.notifications
                    for a in n.alerts
                    if (a.rule, a.scope_value, a.evaluated_at) == (e.rule, e.scope_value, e.ts)
                ),
                None,
            )
            if item is not None and (item.causes or item.resources):
                causes = ", ".join(f"{c.name} {c.n}" for c in item.causes)
                paths = ", ".join(f"{c.name} {c.n}" for c in item.resources)
                out.write(f"{'':22}top causes: {causes or '-'}; top resources: {paths or '-'}\n")
    fired = result.fired()
    by_rule: dict[str, int] = {}
    for e in fired:
        by_rule[e.rule] = by_rule.get(e.rule, 0) + 1
    summary = ", ".join(f"{rule}: {n}" for rule, n in by_rule.items()) or "none"
    out.write(
        f"{len(fired)} alerts would have fired ({summary}) in {len(result.notifications)} "
        f"messages; {cleared} pending alerts cleared before firing\n"
    )


def print_json(result: Backtest, out: TextIO) -> None:
    """SPEC 6: one JSON object per line for each alert that would have fired."""
    for f in result.alerts():
        line = {
            "rule": f.rule,
            "scope": f.scope,
            "key": f.key,
            "fired_at": iso(f.fired_at),
            "resolved_at": iso(f.resolved_at) if f.resolved_at is not None else None,
            "value": f.value,
            "baseline": f.baseline,
            "count": f.count,
            "requests": f.requests,
            "reason": f.reason,
        }
        out.write(json.dumps(line) + "\n")


def run_backtest(
    settings: Settings,
    reader: Reader,
    since: datetime,
    until: datetime,
    step: timedelta | None,
    html: Path | None,
    out: TextIO,
    *,
    output: str = "text",
) -> int:
    """Replay the rules over stored history; print the timeline (or JSON lines), optionally
    write an HTML plot."""
    step = step or timedelta(minutes=1)
    if until <= since:
        raise UsageError(f"--until {iso(until)} must be after --since {iso(since)}")
    if step <= timedelta(0):
        raise UsageError("--step must be positive")
    config = load_alert_config(settings, require_secrets=False)
    try:
        result = run_replay(config, reader, since, until, step)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if output == "json":
        print_json(result, out)
    else:
        print_timeline(result, out)
    if html is not None:
        from conflictradar.alerts.plot import backtest_figure, write_html

        title = f"conflictradar alerts backtest {iso(result.since)} .. {iso(result.until)}"
        try:
            write_html(backtest_figure(result.series, result.events, title), html)
        except OSError as exc:
            raise UsageError(f"cannot write --html {html}: {exc.strerror}") from exc
        print(f"wrote {html}", file=sys.stderr if output == "json" else out)
    return 0
