"""Overview page: KPIs against the previous period, 409s over time by cause, top endpoints."""

from __future__ import annotations

from typing import Any

import streamlit as st

from conflictradar.dashboard import charts
from conflictradar.dashboard.frame import View, page
from conflictradar.dashboard.panels import Cell, download, markdown_table
from conflictradar.ingest import reads

TOP_ENDPOINTS: dict[str, tuple[str, Cell]] = {
    "endpoint": ("endpoint", str),
    "conflicts": ("#409s", "{:,}".format),
    "requests": ("#requests", "{:,}".format),
    "rate": ("#409 rate", lambda rate: f"{rate * 100:.2f} %"),  # as the 409 rate KPI
    "main_cause": ("main cause", str),
}


def _change(cur: float | None, prev: float | None, *, points: bool = False) -> str | None:
    """The change against the previous period, or None when there is nothing to compare."""
    if cur is None or prev is None:
        return None
    if points:
        return f"{(cur - prev) * 100:+.2f} pp"
    if prev == 0:
        return None
    return f"{(cur - prev) / prev * 100:+.0f} %"


def _kpis(cur: dict[str, Any], prev: dict[str, Any]) -> None:
    has_prev = bool(prev["requests"])
    cols = st.columns([1, 1, 1, 1, 1, 1.6])
    rate, before = cur["rate"] or 0.0, prev["rate"] or 0.0
    shown = [
        ("Requests", f"{cur['requests']:,}", _change(cur["requests"], prev["requests"]), "off"),
        ("409s", f"{cur['conflicts']:,}", _change(cur["conflicts"], prev["conflicts"]), "inverse"),
        ("409 rate", f"{rate * 100:.2f} %", _change(rate, before, points=True), "inverse"),
        ("Endpoints hit", f"{cur['endpoints']:,}", _change(cur["endpoints"], prev["endpoints"]),
         "inverse"),
        ("Clients affected", f"{cur['clients']:,}", _change(cur["clients"], prev["clients"]),
         "inverse"),
    ]  # fmt: skip
    for col, (label, value, delta, color) in zip(cols, shown, strict=False):
        # More requests is neutral news; more of anything else here is bad news.
        col.metric(label, value, delta if has_prev else None,
                   delta_color="off" if color == "off" else "inverse", border=True)  # fmt: skip
    with cols[5].container(border=True, height="stretch"):
        cause = cur["top_cause"]
        share = cur["top_cause_conflicts"] / cur["conflicts"] if cause and cur["conflicts"] else 0
        st.markdown(f"Top cause  \n**`{cause}`**  \n{share:.0%} of the 409s" if cause else
                    "Top cause  \n–")  # fmt: skip
    if not has_prev:
        st.caption("No data in the previous period of the same length: no change shown.")


def body(view: View) -> None:
    f = view.filters
    cur = view.fetch(reads.kpis, f).row(0, named=True)
    prev = view.fetch(reads.kpis, f.previous()).row(0, named=True)
    _kpis(cur, prev)
    if f.causes:
        st.caption(
            "Requests and the 409 rate's denominator count every request; the cause "
            "filter narrows the 409s only."
        )
    st.subheader("409s over time, by cause")
    st.plotly_chart(charts.timeline(view.fetch(reads.timeline, f)), key="timeline")
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("Top endpoints")
        top = view.fetch(reads.top_endpoints, f)
        # Ten rows as Markdown, not a data grid: the grid's JavaScript made the first load of
        # a fresh browser ~0.15 s slower (bench.dashboard_cold). Hotspots has the ranking to
        # sort and click.
        if top.height:
            st.markdown(markdown_table(top, TOP_ENDPOINTS))
            download(top, "top_endpoints", "top_endpoints")
        else:
            st.caption("No 409s in this range.")
    with right:
        st.subheader("Cause share")
        shares = view.fetch(reads.cause_shares, f)
        st.plotly_chart(charts.cause_share(shares), key="cause_share")


page("Overview", "Where conflicts stand now, against the period just before.", body)
