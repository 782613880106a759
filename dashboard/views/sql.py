"""SQL page: the read-only sandbox of ingest.sandbox, with example queries, a table and a chart.

Every refusal (a write, a file or network read, a setting, two statements, the time limit) is
shown as the one sentence the sandbox gives; nothing here widens what the sandbox allows.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from conflictradar.dashboard import charts, data, sandbox
from conflictradar.dashboard.frame import View, page
from conflictradar.dashboard.panels import table
from conflictradar.ingest import reads

FILTERED = "Conflicts matching the sidebar filters"


def _examples(view: View) -> dict[str, str]:
    return {FILTERED: reads.filters_sql(view.filters), **dict(reads.EXAMPLE_QUERIES)}


def _use_example(examples: dict[str, str]) -> None:
    title = st.session_state.get("sql_example")
    if title in examples:
        st.session_state["sql_text"] = examples[title]


def _chart(df: pl.DataFrame) -> None:
    numeric = [c for c, t in df.schema.items() if t.is_numeric()]
    if df.is_empty() or not numeric or df.width < 2:
        return
    if not st.toggle("Show a chart", key="sql_chart"):
        return
    cols = st.columns([2, 3, 2])
    x = cols[0].selectbox("x", df.columns, key="sql_x")
    ys = [c for c in numeric if c != x]
    y = cols[1].multiselect("y", ys, default=ys[:1], key="sql_y")
    kind = cols[2].radio("Kind", charts.CHART_KINDS, horizontal=True, key="sql_kind")
    st.plotly_chart(charts.user_chart(df, x, y, kind), key="sql_figure")


def body(view: View) -> None:
    examples = _examples(view)
    st.selectbox(
        "Example queries",
        list(examples),
        index=None,
        key="sql_example",
        placeholder="Start from an example…",
        on_change=_use_example,
        args=(examples,),
    )
    if "sql_text" not in st.session_state:
        st.session_state["sql_text"] = reads.EXAMPLE_QUERIES[0][1]
    sql = st.text_area("Query (one read-only SELECT)", key="sql_text", height=160)
    limits = view.settings.sql
    st.caption(
        f"Read-only and sandboxed: no writes, files, network, extensions or settings; "
        f"stops after {limits.timeout_s:g} s and {limits.max_rows:,} rows. Tables: "
        "requests, conflicts, causes, rejects, files, conflict_lines, request_minutes, "
        "conflict_minutes. The sidebar filters do not apply here; the first example "
        "writes them out."
    )
    if st.button("Run", type="primary", key="sql_run", icon=":material/play_arrow:"):
        st.session_state["sql_outcome"] = sandbox.run(data.reader(view.settings, fresh=True), sql)
    out = st.session_state.get("sql_outcome")
    if not isinstance(out, sandbox.Outcome):
        return
    if out.refusal:
        (st.warning if out.busy else st.error)(out.refusal, icon=":material/block:")
        return
    assert out.result is not None
    df = out.frame()
    cut = f", cut at the {limits.max_rows:,}-row limit" if out.result.truncated else ""
    st.caption(f"{df.height:,} rows in {out.result.elapsed_s:.2f} s{cut}.")
    table(df, "sql_result", plain=True)
    _chart(df)


page("SQL", "Ask the database anything, read-only.", body, refresh=False)
