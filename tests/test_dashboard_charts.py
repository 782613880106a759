"""Dashboard figures are pure DataFrame -> Figure functions: built here from hand-made frames,
including empty ones and labels that try to be plotly markup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import polars as pl
import pytest

from conflictradar.dashboard import charts

T0 = datetime(2025, 6, 3, 10, 0, tzinfo=UTC)
EVIL = '/x/<a href="https://evil.example">click</a>'


def test_timeline_stacks_causes_and_plots_the_rate() -> None:
    df = pl.DataFrame({
        "bucket": [T0, T0, T0 + timedelta(minutes=5)],
        "cause": ["concurrent_update", "unknown", None],
        "conflicts": [3, 1, 0],
        "requests": [40, 40, 10],
    })  # fmt: skip
    fig = charts.timeline(df)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [b.name for b in bars] == ["concurrent_update", "unknown"]  # taxonomy order
    assert bars[0].marker.color == charts.CAUSE_COLORS["concurrent_update"]
    rate = next(t for t in fig.data if t.name == "409 rate")
    assert list(rate.y) == [10.0, 0.0]


def test_heatmap_cells_carry_the_stored_endpoint_and_escape_labels() -> None:
    df = pl.DataFrame({
        "endpoint": [EVIL, "/orders/{id}", "/orders/{id}"],
        "bucket": [T0, T0, T0 + timedelta(minutes=5)],
        "requests": [10, 20, 5], "conflicts": [5, 2, 0], "rate": [0.5, 0.1, 0.0],
    })  # fmt: skip
    fig = charts.heatmap(df)
    heat, cells = fig.data
    assert "<a" not in "".join(heat.y) and "&lt;a href" in heat.y[-1]
    assert list(heat.y) == ["/orders/{id}", charts.label(EVIL)]  # most 409s on top
    assert heat.z[1][0] == 50.0 and heat.z[0][1] == 0.0
    assert len(cells.x) == 2  # only cells with conflicts can be clicked
    assert {c[2] for c in cells.customdata} == {EVIL, "/orders/{id}"}
    assert fig.layout.clickmode == "event+select"


def test_treemap_and_ranking_escape_labels() -> None:
    df = pl.DataFrame({"endpoint": [EVIL, EVIL], "cause": ["unknown", "state_conflict"],
                       "conflicts": [2, 3]})  # fmt: skip
    tree = charts.treemap(df).data[0]
    assert all("<a" not in str(v) for v in tree.labels) and tree.values[0] == 5
    bars = charts.ranking(df.with_columns(main_cause=pl.col("cause")), "endpoint").data[0]
    assert all("<a" not in str(v) for v in bars.y)


Chart = Callable[[pl.DataFrame], go.Figure]
EMPTY_CHARTS = [charts.timeline, charts.cause_trend, charts.heatmap, charts.treemap,
                charts.cause_share]  # fmt: skip


@pytest.mark.parametrize("fn", EMPTY_CHARTS)
def test_empty_frames_give_a_message_not_an_error(fn: Chart) -> None:
    columns: dict[str, pl.DataType | type[pl.DataType]] = {
        "bucket": pl.Datetime("us", "UTC"), "cause": pl.String, "conflicts": pl.Int64,
        "requests": pl.Int64, "endpoint": pl.String, "rate": pl.Float64,
    }  # fmt: skip
    fig = fn(pl.DataFrame(schema=columns))
    assert fig.layout.annotations[0].text.startswith("No conflicts")


def test_user_chart_plots_each_y_column() -> None:
    df = pl.DataFrame({"hour": [1, 2, 3], "a": [1, 2, 3], "b": [3, 2, 1]})
    assert [t.name for t in charts.user_chart(df, "hour", ["a", "b"], "line").data] == ["a", "b"]
    assert charts.user_chart(df, "hour", [], "bar").layout.annotations[0].text == "Nothing to plot"
