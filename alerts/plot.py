"""Backtest -> HTML: the counted series per rule with the firing level and the alerts marked.

Pure `DataFrame -> plotly Figure`; `write_html` is the only I/O. The file embeds plotly.js, so it
opens offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from conflictradar.alerts.evaluation import Event
from conflictradar.alerts.lifecycle import AlertState
from conflictradar.ingest.escape import plotly

_MARKERS = {
    AlertState.FIRING: ("triangle-up", "#d62728", "firing"),
    AlertState.RESOLVED: ("circle", "#2ca02c", "resolved"),
}


def _label(key: str) -> str:
    return plotly(key) if key else "all 409s"


def backtest_figure(series: pl.DataFrame, events: Sequence[Event], title: str) -> go.Figure:
    """One panel per rule: the 409 rate per window for each scope value shown, the rate at which
    the rule would fire (dotted), and markers where alerts fired and resolved."""
    rules = list(dict.fromkeys(series["rule"].to_list())) if series.height else []
    fig = make_subplots(
        rows=max(1, len(rules)),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[plotly(r) for r in rules] or ["no data"],
        vertical_spacing=0.08,
    )
    for row, rule in enumerate(rules, start=1):
        part = series.filter(pl.col("rule") == rule)
        for key in dict.fromkeys(part["key"].to_list()):
            one = part.filter(pl.col("key") == key).sort("ts")
            name = f"{plotly(rule)}: {_label(key)}"
            fig.add_trace(
                go.Scatter(
                    x=one["ts"].to_list(),
                    y=one["value"].to_list(),
                    name=name,
                    mode="lines",
                    line={"width": 1.5},
                ),
                row=row,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    x=one["ts"].to_list(),
                    y=one["fire_level"].to_list(),
                    name=f"{name} (fires above)",
                    mode="lines",
                    line={"dash": "dot", "width": 1},
                ),
                row=row,
                col=1,
            )
        for state, (symbol, color, label) in _MARKERS.items():
            marks = [e for e in events if e.rule == rule and e.state is state and not e.repeat]
            if not marks:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[e.ts for e in marks],
                    y=[e.rate for e in marks],
                    mode="markers",
                    name=f"{plotly(rule)}: {label}",
                    marker={"symbol": symbol, "size": 11, "color": color},
                    text=[plotly(e.message) for e in marks],  # messages quote paths
                    hovertemplate="%{x}<br>%{text}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text="409 rate per window", tickformat=".1%", row=row, col=1)
    fig.update_layout(
        title=plotly(title),
        height=320 * max(1, len(rules)) + 120,
        legend={"orientation": "h"},
        template="plotly_white",
    )
    return fig


def write_html(fig: go.Figure, path: Path) -> None:
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
