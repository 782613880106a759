"""The frame every page renders in: friendly database states, data freshness, live refresh.

A page is a function of a View (settings, data status, resolved filters). The frame turns the
foreseeable failures (no database yet, empty, locked by a writer, not a conflictradar file, bad
config) into one calm sentence instead of a traceback, and re-runs the page body every refresh
period in a fragment while "Live refresh" is on, so the page never reloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Concatenate, ParamSpec, TypeVar

import streamlit as st

from conflictradar.dashboard import data, filters
from conflictradar.ingest.errors import ConfigError, DatabaseError, DatabaseLockedError
from conflictradar.ingest.reader import Reader
from conflictradar.ingest.reads import DataStatus, FilterOptions, Filters, filter_options
from conflictradar.ingest.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")
# The status the entry script read for the sidebar, handed to the page body of the same run so
# a page view asks for it once (a live fragment's later runs read it afresh).
RUN_STATUS_KEY = "_run_status"


@dataclass(frozen=True)
class View:
    """What a page body gets: where the data is, what is in it, and what to show."""

    settings: Settings
    status: DataStatus
    filters: Filters
    live: bool
    now: datetime

    def fetch(
        self, read: Callable[Concatenate[Reader, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return data.fetch(read, self.status.version, *args, **kwargs)


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    s = max(0.0, (now - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def sidebar_state() -> tuple[FilterOptions | None, DataStatus | None]:
    """Options for the sidebar's filters; (None, None) while there is nothing to filter."""
    st.session_state.pop(RUN_STATUS_KEY, None)
    try:
        s = data.settings()
        status = data.status(s)
        st.session_state[RUN_STATUS_KEY] = status
        if not status.has_schema or status.requests == 0:
            return None, status
        return data.fetch(filter_options, status.version), status
    except (ConfigError, DatabaseError):
        return None, None


def _load(now: datetime, known: DataStatus | None = None) -> View | None:
    """The view, or None after showing the state that stands in for it; `known`: the status
    this run already read."""
    try:
        s = data.settings()
    except ConfigError as exc:
        st.error(f"The settings cannot be used: {exc}")
        return None
    try:
        status = known or data.status(s)
    except DatabaseLockedError:
        _locked()
        return None
    except DatabaseError as exc:
        st.warning(f"{exc}.", icon=":material/database:")
        return None
    where = f"`{s.db.resolve()}`"
    if not s.db.exists():
        st.info(
            f"No database yet at {where}. Run `conflictradar ingest PATH` or start "
            "`conflictradar watch PATH`: this page picks the data up by itself.",
            icon=":material/hourglass_empty:",
        )
        return None
    if not status.has_schema:
        st.info(
            f"{where} has no conflictradar tables yet; they appear with the first "
            "`conflictradar ingest` or `watch`.",
            icon=":material/hourglass_empty:",
        )
        return None
    if status.requests == 0:
        st.info(
            f"The database {where} is empty: no request has been ingested yet. Run "
            "`conflictradar ingest PATH` or `conflictradar watch PATH`.",
            icon=":material/hourglass_empty:",
        )
        return None
    sel = filters.current()
    return View(s, status, filters.resolve(sel, status, now), filters.is_live(status, now), now)


def _locked() -> None:
    st.warning(
        "The database is being written by another process right now (locked); "
        f"retrying every {data.REFRESH_S:g} s.",
        icon=":material/lock_clock:",
    )
    if not filters.current().live:
        st.button("Retry now", key="retry_locked")


def _freshness(view: View) -> None:
    f, st_ = view.filters, view.status
    sel = filters.current()
    if sel.range == "custom":
        anchor = "a custom range"
    else:
        anchor = (
            "ending at now (live data)"
            if view.live
            else "ending at the newest line (historical data)"
        )
    st.caption(
        f"**{f.start:%Y-%m-%d %H:%M} → {f.end:%Y-%m-%d %H:%M} UTC**, {anchor} · "
        f"newest line {ago(st_.newest, view.now)} · last ingest {ago(st_.last_ingest, view.now)}"
        + (f" · refreshing every {data.REFRESH_S:g} s" if sel.live else "")
    )


def page(title: str, about: str, body: Callable[[View], None], *, refresh: bool = True) -> None:
    """Render a page: title, then `body(view)` in a fragment that refreshes while live."""
    st.title(title)
    st.caption(about)
    run_every = data.REFRESH_S if refresh and filters.current().live else None
    # The entry script's status serves this run only; the fragment's timed runs read their own.
    known: list[DataStatus] = [x] if isinstance(x := st.session_state.pop(RUN_STATUS_KEY, None),
                                               DataStatus) else []  # fmt: skip

    @st.fragment(run_every=run_every)
    def content() -> None:
        with data.batch():  # a timed refresh runs only this: its reads share one reader too
            _content(body, known.pop() if known else None)

    content()


def _content(body: Callable[[View], None], known: DataStatus | None) -> None:
    view = _load(datetime.now(UTC), known)
    if view is None:
        return
    _freshness(view)
    try:
        body(view)
    except DatabaseLockedError:
        _locked()
    except DatabaseError as exc:
        st.warning(f"{exc}.", icon=":material/database:")
