"""Notification -> Slack: an incoming-webhook body with Block Kit blocks and a fallback `text`.

Everything that comes from the logs (paths, endpoints, causes) is escaped as Slack asks (`&`, `<`,
`>` to entities) and set in code spans, so `/<!channel>` pings nobody, `<https://x|y>` is no link
and `*bold*` stays literal. Bare `@here`/`@channel`/`@everyone` get a word joiner after the `@`.
"""

from __future__ import annotations

import re
from typing import Any

from conflictradar.alerts.detectors import pct, window_text
from conflictradar.alerts.notifications import AlertItem, Notification, Status, iso
from conflictradar.ingest.alert_counts import Count
from conflictradar.ingest.escape import visible

MAX_ALERTS = 10  # Block Kit allows 50 blocks; a message listing more than 10 is not read anyway
SECTION_LIMIT = 3000
_MENTION = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)


def escape(text: str) -> str:
    """Slack mrkdwn escaping of untrusted text: entities for `& < >`, broken bare mentions."""
    text = visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@\u2060", text)


def code(text: str) -> str:
    """Untrusted text as an inline code span (no formatting, no auto-links, no mentions)."""
    inner = escape(text).replace("`", "\u02cb").replace("\n", " ")
    return f"`{inner}`"


def _link(url: str, label: str) -> str:
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe}|{escape(label)}>"


def _counts(label: str, counts: tuple[Count, ...]) -> str:
    if not counts:
        return ""
    return f"\n{label}: " + " · ".join(f"{code(c.name)} {c.n}" for c in counts)


def _subject(a: AlertItem) -> str:
    if a.scope_value:
        return f"*{a.scope.value}* {code(a.scope_value)}"
    return "*all 409s*"


def _numbers(a: AlertItem) -> str:
    window = window_text(a.window_s)
    text = f"*{a.value}* 409s in the last {window}"
    if a.rate is not None:
        text += f" = *{pct(a.rate)}* of {a.requests} requests"
    if a.baseline is not None:
        text += f" (baseline rate {pct(a.baseline)}"
        text += f", {a.score:+.1f}σ)" if a.score is not None else ")"
    else:
        text += f" (threshold {a.min_count})"
    return text


def alert_text(a: AlertItem) -> str:
    """One alert's section: subject, value vs baseline, top causes/resources, dashboard link."""
    if a.status is Status.RESOLVED:
        head = f"✅ {_subject(a)} resolved — now {_numbers(a)}; firing since {iso(a.starts_at)}"
    else:
        again = " (still firing)" if a.repeat else ""
        head = f"🔴 {_subject(a)}{again} — {_numbers(a)}"
        if a.flapping:
            head += " — _flapping: it keeps starting and stopping_"
    body = (
        head
        + _counts("Top causes", a.causes)
        + _counts("Top resources", a.resources)
        + _counts("Top endpoints", a.endpoints)
        + "\n"
        + _link(a.link, "Open in dashboard")
    )
    return body if len(body) <= SECTION_LIMIT else body[: SECTION_LIMIT - 1] + "…"


def title(n: Notification) -> str:
    if n.test:
        return "🧪 TEST — conflictradar test notification (no action needed)"
    firing = sum(a.status is Status.FIRING for a in n.alerts)
    resolved = len(n.alerts) - firing
    parts = [f"{firing} firing"] if firing else []
    parts += [f"{resolved} resolved"] if resolved else []
    return f"{'🔴 FIRING' if firing else '✅ RESOLVED'}: {n.rule} ({', '.join(parts)})"


def fallback_text(n: Notification) -> str:
    """The notification's plain summary (shown in push notifications and old clients)."""
    if n.test:
        return escape(
            "[TEST] conflictradar test notification: the channel works; no action needed."
        )
    # Subjects are log text: code spans, as in the blocks (no bold, links or mentions).
    items = "; ".join(
        f"{code(a.subject)} {a.status.value} {a.value} 409s/{window_text(a.window_s)}"
        + (f" = {pct(a.rate)}" if a.rate is not None else "")
        + (f" (baseline {pct(a.baseline)})" if a.baseline is not None else "")
        for a in n.alerts[:MAX_ALERTS]
    )
    more = f"; and {len(n.alerts) - MAX_ALERTS} more" if len(n.alerts) > MAX_ALERTS else ""
    return f"{escape(f'[{n.status.value.upper()}] {n.rule}:')} {items}{more}"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


TEST_TEXT = (
    "This is a test notification sent by `conflictradar alerts test`. No 409 spike is happening. "
    "If you can read this, the channel is configured correctly."
)


def slack_payload(n: Notification) -> dict[str, Any]:
    """The JSON body for a Slack incoming webhook."""
    blocks = [_section(f"*{escape(title(n))}*")]
    if n.test:
        blocks.append(_section(escape(TEST_TEXT)))
    else:
        blocks.extend(_section(alert_text(a)) for a in n.alerts[:MAX_ALERTS])
        if len(n.alerts) > MAX_ALERTS:
            more = len(n.alerts) - MAX_ALERTS
            blocks.append(
                _context(f"… and {more} more alerts in this incident (see the dashboard)")
            )
    dashboard = _link(n.link, "dashboard")
    blocks.append(_context(f"rule {code(n.rule)} · evaluated {iso(n.created)} · {dashboard}"))
    return {"text": fallback_text(n), "blocks": blocks}
