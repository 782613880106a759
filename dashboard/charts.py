"""Figures for the dashboard pages: pure functions from a read's DataFrame to a plotly Figure.

reads -> DataFrame -> here -> st.plotly_chart. No I/O and no Streamlit here, so every chart can be
built and checked in a test from a hand-made frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import polars as pl

from conflictradar.ingest import escape
from conflictradar.ingest.causes import Cause

CAUSE_COLORS: dict[str, str] = {
    Cause.CONCURRENT_UPDATE: "#e15759",
    Cause.RETRY_AFTER_SUCCESS: "#4e79a7",
    Cause.VERSION_MISMATCH: "#f28e2b",
    Cause.DUPLICATE_CREATE: "#b07aa1",
    Cause.RESOURCE_LOCKED: "#edc948",
    Cause.STATE_CONFLICT: "#59a14f",
    Cause.GATEWAY_CONFLICT: "#76b7b2",
    Cause.UNKNOWN: "#bab0ac",
}
OTHER_COLOR = "#9c755f"
CAUSE_ORDER = [c.value for c in Cause]
# conflicts.confidence: proven, suggested, unexplained
CONFIDENCE_COLORS = {"certain": "#2e7d32", "inferred": "#f0a202", "unknown": "#9e9e9e"}
HEAT_SCALE = [[0.0, "#fff5eb"], [0.25, "#fdae6b"], [0.6, "#e6550d"], [1.0, "#7f2704"]]


def label(value: object) -> str:
    """Log-derived text for a plotly label, tick or hover: plotly reads <a>, <b>, <br> there."""
    return escape.plotly(value)


def cause_color(cause: str | None) -> str:
    return CAUSE_COLORS.get(cause or "", OTHER_COLOR)


def _causes_in(df: pl.DataFrame) -> list[str]:
    present = set(df["cause"].drop_nulls().to_list())
    return [c for c in CAUSE_ORDER if c in present] + sorted(present - set(CAUSE_ORDER))


# Axis charts get margins sized from their labels rather than plotly's automargin (Streamlit's
# theme turns it on): automargin measures the tick labels and draws the chart again, which about
# doubles each draw, and Streamlit draws a chart three or four times while a page loads.
CHAR_PX = 6.5  # a 12 px label's average character width, with room to spare
AXIS_PX = 60  # numeric ticks (plotly shortens them: 1.2k) and a rotated axis title
DATES_PX = 52  # date ticks: two lines where the day changes


def label_px(labels: Sequence[str]) -> int:
    """Room for the longest of `labels` beside an axis (capped: a longer one is cut)."""
    return min(16 + round(CHAR_PX * max((len(x) for x in labels), default=0)), 420)


def _fixed(fig: go.Figure, *axes: str) -> None:
    fig.update_layout({axis: {"automargin": False} for axis in axes})


def _layout(
    fig: go.Figure, height: int = 360, legend: bool = True, margin: dict[str, int] | None = None
) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 8, "r": 8, "t": 32, "b": 8, **(margin or {})},
        showlegend=legend,
        # Below the plot: above it, the legend would run under plotly's tool bar.
        legend={"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0, "title": None},
        hoverlabel={"namelength": -1},
    )
    return fig


def empty(message: str = "No conflicts for these filters", height: int = 240) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        font={"size": 15, "color": "#888"},
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height, legend=False)


def timeline(df: pl.DataFrame) -> go.Figure:
    """409s per time bucket stacked by cause, with the 409 rate on a second axis.

    `df`: bucket, cause (null for a bucket without conflicts), conflicts, requests.
    """
    if df.is_empty() or df["conflicts"].sum() == 0:
        return empty()
    fig = go.Figure()
    for cause in _causes_in(df):
        part = df.filter(pl.col("cause") == cause)
        fig.add_bar(
            x=part["bucket"].to_list(),
            y=part["conflicts"].to_list(),
            name=label(cause),
            marker_color=cause_color(cause),
            hovertemplate="%{y:,} " + label(cause) + "<extra></extra>",
        )
    per = (
        df.group_by("bucket")
        .agg(pl.col("conflicts").sum(), pl.col("requests").first())
        .sort("bucket")
        .with_columns(rate=pl.col("conflicts") / pl.col("requests") * 100)
    )
    fig.add_scatter(
        x=per["bucket"].to_list(),
        y=per["rate"].to_list(),
        name="409 rate",
        yaxis="y2",
        mode="lines",
        line={"color": "#333", "width": 1.5, "dash": "dot"},
        hovertemplate="%{y:.2f} % of requests<extra>409 rate</extra>",
    )
    fig.update_layout(
        barmode="stack",
        hovermode="x unified",
        bargap=0.1,
        yaxis={"title": "409s", "rangemode": "tozero"},
        yaxis2={
            "title": "409 rate %",
            "tickformat": ".0f",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
        },
    )
    _fixed(fig, "xaxis", "yaxis", "yaxis2")
    return _layout(fig, margin={"l": AXIS_PX, "r": AXIS_PX, "b": DATES_PX})


def cause_trend(df: pl.DataFrame) -> go.Figure:
    """One line per cause over time (`df` as for `timeline`)."""
    if df.is_empty() or df["conflicts"].sum() == 0:
        return empty()
    buckets = df.select("bucket").unique().sort("bucket")
    fig = go.Figure()
    for cause in _causes_in(df):
        part = buckets.join(df.filter(pl.col("cause") == cause), on="bucket", how="left")
        fig.add_scatter(
            x=part["bucket"].to_list(),
            y=part["conflicts"].fill_null(0).to_list(),
            name=cause,
            mode="lines",
            line={"color": cause_color(cause), "width": 2},
            stackgroup=None,
        )
    fig.update_layout(hovermode="x unified", yaxis={"title": "409s", "rangemode": "tozero"})
    _fixed(fig, "xaxis", "yaxis")
    return _layout(fig, 320, margin={"l": AXIS_PX, "b": DATES_PX})


def heatmap(df: pl.DataFrame) -> go.Figure:
    """Endpoint x time bucket, coloured by 409 rate; click a cell to select it.

    `df`: endpoint, bucket, requests, conflicts, rate. Plotly heatmaps cannot be selected, so an
    invisible marker sits on every cell: clicking a cell selects its marker (x, y, customdata).
    """
    if df.is_empty() or df["conflicts"].sum() == 0:
        return empty()
    order = (
        df.group_by("endpoint")
        .agg(pl.col("conflicts").sum())
        .sort(["conflicts", "endpoint"], descending=[False, True])["endpoint"]
        .to_list()
    )
    buckets = df.select("bucket").unique().sort("bucket")["bucket"].to_list()
    grid = {(r["endpoint"], r["bucket"]): r["rate"] for r in df.iter_rows(named=True)}
    z = [[None if grid.get((ep, b)) is None else grid[(ep, b)] * 100 for b in buckets]
         for ep in order]  # fmt: skip
    fig = go.Figure()
    names = [label(e) for e in order]
    fig.add_heatmap(
        x=buckets, y=names, z=z, colorscale=HEAT_SCALE, zmin=0,
        colorbar={"title": {"text": "409 %"}, "thickness": 12}, hoverinfo="skip", xgap=1, ygap=1,
    )  # fmt: skip
    cells = df.filter(pl.col("conflicts") > 0)
    fig.add_scatter(
        x=cells["bucket"].to_list(),
        y=[label(e) for e in cells["endpoint"].to_list()],
        mode="markers",
        marker={"size": 14, "color": "rgba(0,0,0,0)"},
        # The clicked cell gets a dot; the others stay invisible.
        selected={"marker": {"color": "rgba(20,20,20,0.75)", "size": 9}},
        unselected={"marker": {"opacity": 0}},
        showlegend=False,
        name="cells",
        # What a click reports: counts for the hover, and the endpoint and bucket as stored.
        customdata=[
            [r["conflicts"], r["requests"], r["endpoint"], r["bucket"].isoformat()]
            for r in cells.iter_rows(named=True)
        ],
        hovertemplate="%{y}<br>%{x}<br>%{customdata[0]:,} 409s of %{customdata[1]:,} "
        "requests<extra>click to drill down</extra>",
    )
    fig.update_layout(
        hoverdistance=-1,
        clickmode="event+select",
        dragmode=False,
        yaxis={"automargin": False, "type": "category"},
        xaxis={"showgrid": False, "automargin": False},
    )
    height = max(260, 40 + 26 * len(order))
    return _layout(fig, height, legend=False, margin={"l": label_px(names), "b": DATES_PX})


def treemap(df: pl.DataFrame) -> go.Figure:
    """Endpoint -> cause boxes sized by conflicts (`df`: endpoint, cause, conflicts)."""
    if df.is_empty():
        return empty()
    totals = (
        df.group_by("endpoint").agg(pl.col("conflicts").sum()).sort("conflicts", descending=True)
    )
    # Plotly shows ids too (%{parent} in the hover): they are escaped like the labels.
    ids = ["all", *[label(e) for e in totals["endpoint"].to_list()]]
    labels = ["All 409s", *[label(e) for e in totals["endpoint"].to_list()]]
    parents = [""] + ["all"] * totals.height
    values = [int(totals["conflicts"].sum()), *totals["conflicts"].to_list()]
    colors = ["#f4f4f4"] + ["#e9e9e9"] * totals.height
    for r in df.iter_rows(named=True):
        ids.append(f"{label(r['endpoint'])} / {label(r['cause'])}")
        labels.append(label(r["cause"]))
        parents.append(label(r["endpoint"]))
        values.append(r["conflicts"])
        colors.append(cause_color(r["cause"]))
    fig = go.Figure(
        go.Treemap(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            marker={"colors": colors},
            maxdepth=3,
            textinfo="label+value+percent parent",
            hovertemplate="%{label}<br>%{value:,} 409s<br>%{percentParent:.0%} of %{parent}"
            "<extra></extra>",
        )
    )
    return _layout(fig, 420, legend=False)


def cause_share(df: pl.DataFrame) -> go.Figure:
    """A donut of each cause's share (`df`: cause, conflicts)."""
    if df.is_empty():
        return empty()
    fig = go.Figure(
        go.Pie(
            labels=[label(c) for c in df["cause"].to_list()],
            values=df["conflicts"].to_list(),
            hole=0.55,
            sort=False,
            marker={"colors": [cause_color(c) for c in df["cause"].to_list()]},
            textinfo="percent",
            hovertemplate="%{label}<br>%{value:,} 409s (%{percent})<extra></extra>",
        )
    )
    fig.update_layout(legend={"orientation": "v", "x": 1.0, "y": 0.5})
    return _layout(fig, 320)


def confidence_bars(df: pl.DataFrame) -> go.Figure:
    """Each cause's conflicts split by confidence, stacked (`df`: cause, conflicts and one
    column per level of CONFIDENCE_COLORS)."""
    if df.is_empty():
        return empty()
    d = df.sort("conflicts")
    fig = go.Figure(
        [
            go.Bar(
                y=d["cause"].to_list(),
                x=d[level].to_list(),
                name=level,
                orientation="h",
                marker={"color": color},
                hovertemplate=f"%{{y}}: %{{x:,}} {level}<extra></extra>",
            )
            for level, color in CONFIDENCE_COLORS.items()
        ]
    )
    fig.update_layout(barmode="stack", xaxis_title="409 requests")
    _fixed(fig, "xaxis", "yaxis")
    room = {"l": label_px(d["cause"].to_list()), "b": 48}  # ticks and the x title
    return _layout(fig, max(220, 60 + 34 * d.height), margin=room)


def ranking(
    df: pl.DataFrame, by: str, value: str = "conflicts", color_by: str = "main_cause"
) -> go.Figure:
    """Horizontal bars, largest on top, coloured by the row's main cause."""
    if df.is_empty():
        return empty()
    d = df.sort(value)
    fig = go.Figure(
        go.Bar(
            x=d[value].to_list(),
            y=[label(v) for v in d[by].to_list()],
            orientation="h",
            marker_color=[cause_color(c) for c in d[color_by].to_list()],
            customdata=[label(c) for c in d[color_by].to_list()],
            hovertemplate="%{y}<br>%{x:,} 409s, mostly %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(yaxis={"automargin": True, "type": "category"}, xaxis={"title": "409s"})
    return _layout(fig, max(220, 40 + 28 * d.height), legend=False)


CHART_KINDS: Sequence[str] = ("bar", "line", "scatter", "area")


def user_chart(df: pl.DataFrame, x: str, y: Sequence[str], kind: str = "bar") -> go.Figure:
    """A chart of any query result: one trace per y column."""
    if df.is_empty() or not y:
        return empty("Nothing to plot")
    d = df.sort(x) if kind in ("line", "area") else df
    fig = go.Figure()
    xs = d[x].to_list()
    if d.schema[x] in (pl.String, pl.Categorical) or d.schema[x].is_nested():
        xs = [None if v is None else label(v) for v in xs]  # query results quote log text
    for col in y:
        ys = d[col].to_list()
        if kind == "bar":
            fig.add_bar(x=xs, y=ys, name=label(col))
        else:
            fig.add_scatter(
                x=xs,
                y=ys,
                name=label(col),
                mode="markers" if kind == "scatter" else "lines",
                stackgroup="one" if kind == "area" else None,
            )
    fig.update_layout(
        xaxis={"title": label(x), "automargin": True}, colorway=list(CAUSE_COLORS.values())
    )
    return _layout(fig, 380, legend=len(y) > 1)
