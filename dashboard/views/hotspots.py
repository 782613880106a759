"""Hotspots page: where conflicts cluster (endpoint x time, endpoint -> cause, resources,
clients), and a drill-down from any hotspot to the conflicts behind it.

Drill-down: clicking a heatmap cell, or a row of the resources or clients table, fills the
drill-down pickers below (the pickers work on their own too: treemap boxes cannot be selected).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import polars as pl
import streamlit as st

from conflictradar.dashboard import charts
from conflictradar.dashboard.frame import View, page
from conflictradar.dashboard.panels import conflict_list, table
from conflictradar.ingest import reads
from conflictradar.ingest.reads import Drill, Filters

PICKS = ("drill_endpoint", "drill_cause", "drill_path", "drill_client", "drill_cell")


def _on_heat() -> None:
    points = st.session_state["heat"]["selection"]["points"]
    if points:
        # customdata holds the endpoint and bucket as stored (labels are escaped for plotly).
        data = points[0].get("customdata") or [None, None, points[0]["y"], points[0]["x"]]
        st.session_state["drill_endpoint"] = data[2]
        st.session_state["drill_cell"] = str(data[3])


def _on_row(df: pl.DataFrame, key: str, column: str, target: str) -> None:
    rows = st.session_state[key]["selection"]["rows"]
    if rows and rows[0] < df.height:
        st.session_state[target] = df[column][rows[0]]


def _clear() -> None:
    for k in PICKS:
        st.session_state[k] = None


def _pick(label: str, key: str, options: list[str]) -> str | None:
    current = st.session_state.get(key)
    if current is not None and current not in options:
        options = [current, *options]
    return st.selectbox(label, options, index=None, key=key, placeholder="any")


def _cell(value: str | None, bucket_s: int) -> tuple[datetime, datetime] | None:
    if not value:
        return None
    try:
        start = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    return start, start + timedelta(seconds=bucket_s)


def _narrow(
    f: Filters, endpoint: str | None, cause: str | None, cell: tuple[datetime, datetime] | None
) -> Filters:
    out = replace(
        f,
        endpoints=(endpoint,) if endpoint else f.endpoints,
        causes=(cause,) if cause else f.causes,
    )
    if cell is not None:
        out = replace(out, start=max(f.start, cell[0]), end=min(f.end, cell[1]))
    return out


def body(view: View) -> None:
    f = view.filters
    bucket_s = reads.bucket_seconds(f.span)
    heat = view.fetch(reads.endpoint_heatmap, f)
    st.subheader("409 rate by endpoint and time")
    st.caption(
        f"Top endpoints by 409s; {bucket_s // 60:,}-minute cells. Click a cell to list "
        "its conflicts below."
    )
    st.plotly_chart(charts.heatmap(heat), key="heat", on_select=_on_heat, selection_mode="points")
    # The 12 busiest endpoints: a treemap box costs the browser text fitting, and smaller boxes
    # than these are unreadable anyway (the heatmap and the pickers reach every endpoint).
    tree = view.fetch(reads.endpoint_causes, f, top=12)
    resources = view.fetch(reads.top_resources, f)
    clients = view.fetch(reads.top_clients, f)
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Endpoint → cause")
        st.caption("Click a box to zoom in; pick it below to list its conflicts.")
        st.plotly_chart(charts.treemap(tree), key="treemap")
    with right:
        st.subheader("Top resources")
        st.caption("Concrete paths with the most 409s. Select a row to drill down.")
        table(
            resources,
            "resources",
            select=True,
            height=420,
            on_select=partial(_on_row, resources, "resources", "path", "drill_path"),
        )
    st.subheader("Top clients")
    st.caption("Client IP and user agent with the most 409s. Select a row to drill down.")
    table(
        clients,
        "clients",
        select=True,
        height=280,
        on_select=partial(_on_row, clients, "clients", "client_ip", "drill_client"),
    )
    _drill(view, heat, tree, resources, clients, bucket_s)


def _drill(
    view: View,
    heat: pl.DataFrame,
    tree: pl.DataFrame,
    resources: pl.DataFrame,
    clients: pl.DataFrame,
    bucket_s: int,
) -> None:
    st.subheader("Conflicts behind the selection")
    endpoints = sorted(set(heat["endpoint"].to_list()) | set(tree["endpoint"].to_list()))
    cols = st.columns(4)
    with cols[0]:
        endpoint = _pick("Endpoint", "drill_endpoint", endpoints)
    with cols[1]:
        cause = _pick("Cause", "drill_cause", sorted(set(tree["cause"].to_list())))
    with cols[2]:
        path = _pick("Resource", "drill_path", resources["path"].to_list())
    with cols[3]:
        client = _pick("Client", "drill_client", clients["client_ip"].unique().to_list())
    cell = _cell(st.session_state.get("drill_cell"), bucket_s)
    picked = [endpoint, cause, path, client, cell]
    if cell is not None:
        st.caption(f"Time cell from the heatmap: {cell[0]:%Y-%m-%d %H:%M} – {cell[1]:%H:%M} UTC")
    if not any(p is not None for p in picked):
        st.info(
            "Click a heatmap cell or a table row above, or pick an endpoint, cause, resource "
            "or client, to see the conflicts behind it.",
            icon=":material/ads_click:",
        )
        return
    st.button("Clear drill-down", on_click=_clear, key="drill_clear", icon=":material/close:")
    narrowed = _narrow(view.filters, endpoint, cause, cell)
    conflict_list(view, narrowed, Drill(path=path, client=client), key="drill_conflicts")


page("Hotspots", "Where 409s cluster: endpoints, time, resources and clients.", body)
