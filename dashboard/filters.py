"""Sidebar filters: widgets bound to the URL's query string -> a Selection -> reads.Filters.

The widgets live in the entry script, so their query parameters survive page switches and a
view can be shared by link (`?range=1h&endpoint=/orders/{id}&cause=concurrent_update`). Quick
ranges end at the newest line when the data is historical, and at the wall clock when it is live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import streamlit as st

from conflictradar.ingest.reads import DataStatus, FilterOptions, Filters

# Quick picks (also their URL values: `?range=6h`); "all" and "custom" have no fixed span.
RANGES: dict[str, timedelta | None] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "all": None,
    "custom": None,
}
DEFAULT_RANGE = "24h"
# Data whose newest line is younger than this is live: quick ranges then end now.
LIVE_WINDOW = timedelta(minutes=5)
SELECTION_KEY = "_selection"
# The sidebar's narrowing multiselects: (label, URL parameter, field of Selection and of
# FilterOptions), in sidebar order.
NARROWING = (
    ("Log file", "file", "files"),
    ("Host", "host", "hosts"),
    ("Endpoint", "endpoint", "endpoints"),
    ("Method", "method", "methods"),
    ("Cause", "cause", "causes"),
)
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Selection:
    """The sidebar's raw choices, before they are anchored to the data's time."""

    range: str = DEFAULT_RANGE
    start: datetime | None = None  # custom range, UTC
    end: datetime | None = None
    files: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()
    live: bool = True


def is_live(status: DataStatus, now: datetime) -> bool:
    return status.newest is not None and now - status.newest <= LIVE_WINDOW


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def resolve(sel: Selection, status: DataStatus, now: datetime) -> Filters:
    """The selection as concrete filters; "last N" ends at the newest line unless data is live."""
    newest = status.newest or now
    anchor = now if is_live(status, now) else newest
    oldest = status.oldest or newest
    span = RANGES.get(sel.range, RANGES[DEFAULT_RANGE])
    # Ranges end after the minute holding the anchor, so its newest line is included.
    stop = anchor.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if sel.range == "custom":
        start, end = _utc(sel.start) or oldest, _utc(sel.end) or stop
        if end <= start:
            start, end = end, start
    elif span is None:
        start, end = oldest, stop
    else:
        # Clipped to the data, so a short history gets fine time buckets, not a few wide ones.
        start, end = max(stop - span, oldest), stop
    return Filters(start, end, sel.files, sel.hosts, sel.endpoints, sel.methods, sel.causes)


def sidebar(options: FilterOptions | None, status: DataStatus | None) -> Selection:
    """Render the filters (disabled until there is data) and remember the selection."""
    off = options is None
    opts = options or FilterOptions()
    st.logo(str(HERE / "logo.svg"), size="large", icon_image=str(HERE / "icon.svg"))
    with st.sidebar:
        st.markdown("### Filters")
        rng = st.segmented_control(
            "Time range",
            list(RANGES),
            default=DEFAULT_RANGE,
            key="range",
            bind="query-params",
            disabled=off,
            width="stretch",
        )
        start = end = None
        if rng == "custom":
            start = st.datetime_input(
                "From (UTC)", value=None, key="from", bind="query-params", disabled=off
            )
            end = st.datetime_input(
                "To (UTC)", value=None, key="to", bind="query-params", disabled=off
            )
        if status is not None and status.newest is not None:
            now = datetime.now(UTC)
            if is_live(status, now):
                st.caption("Live data: ranges end now.")
            else:
                st.caption(
                    "Historical data: ranges end at the newest line, "
                    f"{status.newest:%Y-%m-%d %H:%M} UTC."
                )
        chosen = {
            attr: tuple(
                st.multiselect(
                    label,
                    getattr(opts, attr),
                    key=key,
                    bind="query-params",
                    disabled=off,
                    placeholder=f"All {attr}",
                )
            )
            for label, key, attr in NARROWING
        }
        live = st.toggle(
            "Live refresh",
            value=True,
            key="live",
            bind="query-params",
            help="Refresh numbers and charts every few seconds while "
            "`conflictradar watch` ingests.",
        )
    sel = Selection(rng or DEFAULT_RANGE, start, end, live=bool(live), **chosen)
    st.session_state[SELECTION_KEY] = sel
    return sel


def current() -> Selection:
    """The selection the sidebar made in this run (defaults before it ran)."""
    sel = st.session_state.get(SELECTION_KEY)
    return sel if isinstance(sel, Selection) else Selection()
