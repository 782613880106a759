"""Alerts page: configured rules and channels, the current state of each alert, its history and
the deliveries, read from the tables the alerts package writes (`alert_events`, `deliveries`).

The dashboard never imports the alerts package: it shows the typed alert settings (validated at
load, defaults included) and reads the tables the alerts package writes.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from conflictradar.dashboard import alert_backtest
from conflictradar.dashboard.frame import View, page
from conflictradar.dashboard.panels import table
from conflictradar.ingest import alert_reads
from conflictradar.ingest.alert_settings import AlertSettings, DetectorKind

# Columns that identify one alert (rule and scope) and hold its state, when events carry them.
KEY_COLUMNS = ("rule", "scope", "scope_value")
STATE_COLUMNS = ("state", "status", "to_state", "new_state")
STATE_FIRST = ("rule", "scope", "scope_value", "state", "since", "value", "baseline", "score")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def rules_frame(alerts: AlertSettings) -> pl.DataFrame:
    """The effective rules, defaults included, every key resolved."""
    rows = [
        {
            "name": r.name,
            "scope": r.scope.value,
            "detector": r.detector.value,
            "judges": "409 rate vs its own history"
            if r.detector is DetectorKind.BASELINE
            else "409 count",
            "window": _span(r.window_s),
            "short window": _span(r.short_window_s),
            "min_count": r.min_count,
            "ratio": r.ratio,
            "deviation": r.deviation,
            "for": _span(r.for_s),
            "history": f"{r.history} x {_span(r.step_s)}",
            "silent until": f"{r.min_history} past windows",
            "resolve_after": _span(r.resolve_after_s),
            "channels": "all" if r.channels is None else ", ".join(r.channels) or "none",
        }
        for r in alerts.rules
    ]
    return pl.DataFrame(rows)


def channels_frame(alerts: AlertSettings) -> pl.DataFrame:
    # Only the names of environment variables: never a URL or a secret.
    return pl.DataFrame(
        {
            "channel": [c.name for c in alerts.channels],
            "type": [c.kind.value for c in alerts.channels],
            "url from env": [c.url_env for c in alerts.channels],
        }
    )


def _backtest(view: View) -> None:
    st.subheader("Backtest: these rules over the last 24 h")
    # On request: a day's replay costs seconds of CPU, which a page view should not spend unasked.
    if not st.toggle("Replay the current rules over the last 24 h", key="alerts_backtest"):
        st.caption("Which alerts these rules would have sent, and when (nothing is sent).")
        return
    replay = alert_backtest.last_day(view.settings)
    if replay.error:
        st.warning(f"The backtest could not run: {replay.error}", icon=":material/error:")
        return
    fired = replay.alerts
    if fired.is_empty():
        st.info(
            "These rules would not have fired in the last 24 h (a rule with too little "
            "history stays silent until it has its past windows).",
            icon=":material/check_circle:",
        )
        return
    st.caption(
        f"{fired.height} alerts would have fired (nothing was sent): value is the 409 rate of "
        "the window when it fired, baseline the rate it was judged against. Tune the rules in "
        "conflictradar.toml and compare."
    )
    table(fired.drop("reason"), "alert_backtest")


def current_state(events: pl.DataFrame) -> pl.DataFrame | None:
    """The latest event per alert (rule, scope), when the events carry those columns."""
    keys = [k for k in KEY_COLUMNS if k in events.columns]
    if "rule" not in keys or not any(c in events.columns for c in STATE_COLUMNS):
        return None
    # Events come newest first: the first row per alert is its current state.
    return events.unique(subset=keys, keep="first", maintain_order=True)


def _newest(view: View, name: str, present: set[str]) -> tuple[pl.DataFrame, bool]:
    """Rows in the time range, else the newest rows at all (alerts may be stamped with the wall
    clock while the data is historical); the flag says whether the range held any."""
    if name not in present:
        return pl.DataFrame(), True
    rows = view.fetch(alert_reads.alert_rows, view.filters, name)
    if not rows.is_empty():
        return rows, True
    return view.fetch(alert_reads.alert_rows, view.filters, name, limit=200, in_range=False), False


def _ids(df: pl.DataFrame) -> tuple[str, ...]:
    """Internal ids: in the CSV, not on screen."""
    return tuple(c for c in df.columns if c == "id" or c.endswith("_id"))


def _history(view: View, title: str, name: str, present: set[str], what: str) -> None:
    st.subheader(title)
    rows, in_range = _newest(view, name, present)
    if rows.is_empty():
        st.caption(f"No {what} yet.")
        return
    if not in_range:
        st.caption(f"No {what} in the selected time range; the newest are shown.")
    table(rows, name, hide=_ids(rows))


def body(view: View) -> None:
    alerts = view.settings.alerts
    st.subheader("Rules")
    if not alerts.configured:
        st.caption(
            "No rules in the config file: these defaults apply. Add `[[alerts.rules]]` to "
            "conflictradar.toml to change them."
        )
    table(rules_frame(alerts), "alert_rules")
    st.caption(
        f"Alerts that fire within {_span(alerts.grouping.wait_s)} of each other make one "
        f"message; a rule stays silent until it has its past windows (a cold start pages "
        "no one)."
    )
    channels = channels_frame(alerts)
    if channels.is_empty():
        st.caption("No channels configured: alerts are recorded here, sent nowhere.")
    else:
        st.caption("Channels (URLs and keys come from the environment and are never shown)")
        table(channels, "alert_channels")
    _backtest(view)
    present = set(view.fetch(alert_reads.alert_columns)["table_name"].to_list())
    if not present & {"alert_events", "deliveries"}:
        st.info(
            "No alerts yet: `alert_events` and `deliveries` appear once "
            "`conflictradar watch` or `conflictradar alerts check` has evaluated the rules.",
            icon=":material/notifications_off:",
        )
        return
    st.subheader("Current state")
    now: pl.DataFrame | None
    if "alert_state" in present:
        now = view.fetch(alert_reads.alert_rows, view.filters, "alert_state", in_range=False)
    else:
        now = current_state(_newest(view, "alert_events", present)[0])
    if now is None or now.is_empty():
        st.info("No alert has fired or is pending.", icon=":material/check_circle:")
    else:
        first = [c for c in STATE_FIRST if c in now.columns]
        table(
            now.select(*first, *[c for c in now.columns if c not in first]),
            "alert_state",
            hide=_ids(now),
        )
    _history(view, "History", "alert_events", present, "alert state changes")
    _history(view, "Deliveries", "deliveries", present, "delivery attempts")


page("Alerts", "Spike rules, what is firing, and what was sent where.", body)
