"""Causes page: each cause's share and trend, what it means, the fix, and example evidence."""

from __future__ import annotations

import polars as pl
import streamlit as st

from conflictradar.dashboard import charts
from conflictradar.dashboard.frame import View, page
from conflictradar.dashboard.panels import code, file_line, table, text
from conflictradar.ingest import confidence_reads, reads


def body(view: View) -> None:
    f = view.filters
    shares = view.fetch(reads.cause_shares, f)
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.subheader("Share")
        # Bars in the table, not a donut beside it: the same shares, one Plotly figure less.
        bars = st.column_config.ProgressColumn("share", format="percent", min_value=0.0,
                                               max_value=1.0)  # fmt: skip
        table(shares, "cause_shares", hide=("title",), columns={"share": bars})  # in the CSV
    with right:
        st.subheader("Trend")
        st.plotly_chart(charts.cause_trend(view.fetch(reads.timeline, f)), key="cause_trend")
    st.subheader("How sure")
    st.caption(
        "**certain**: a status, a competing request or a recognised error text proves the cause;"
        " **inferred**: only the method or the path suggests it; **unknown**: nothing does."
    )
    sure = view.fetch(confidence_reads.confidence_by_cause, f)
    st.plotly_chart(charts.confidence_bars(sure), key="confidence_bars")
    table(view.fetch(confidence_reads.confidence_by_endpoint, f), "confidence_endpoints")
    catalog = view.fetch(reads.cause_catalog)
    examples = view.fetch(reads.cause_examples, f)
    st.subheader("What each cause means and how to fix it")
    counts = dict(zip(shares["cause"].to_list(), shares["conflicts"].to_list(), strict=True))
    share = dict(zip(shares["cause"].to_list(), shares["share"].to_list(), strict=True))
    ordered = catalog.with_columns(
        n=pl.col("cause").replace_strict(counts, default=0, return_dtype=pl.Int64)
    ).sort(["n", "cause"], descending=[True, False])
    for i, c in enumerate(ordered.iter_rows(named=True)):
        n = c["n"]
        label = (
            f"**{c['title']}** · `{c['cause']}` · {n:,} 409s ({share[c['cause']]:.0%})"
            if n
            else f"{c['title']} · `{c['cause']}` · none in range"
        )
        with st.expander(label, expanded=i < 2 and n > 0):
            st.markdown(c["description"])
            st.success(f"**Remediation:** {c['remediation']}", icon=":material/build:")
            ex = examples.filter(pl.col("cause") == c["cause"])
            if ex.is_empty():
                continue
            # One markdown element for the list: each element costs the browser a render.
            items = [
                f"- {e['ts']:%Y-%m-%d %H:%M:%S} · **{text(e['method'])}** {code(e['path'])} — "
                f"{text(e['evidence'])} · {code(file_line(e['file'], e['line']))}"
                for e in ex.iter_rows(named=True)
            ]
            st.markdown("\n".join(["**Example evidence**", "", *items]))


page("Causes", "Why the 409s happen, and the fix for each cause.", body)
