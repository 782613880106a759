"""Explorer page: every conflict in the filters, searchable, with evidence and raw line; CSV."""

from __future__ import annotations

import streamlit as st

from conflictradar.dashboard.frame import View, page
from conflictradar.dashboard.panels import conflict_list
from conflictradar.ingest.reads import Drill

LIMITS = (100, 500, 1000, 5000)


def body(view: View) -> None:
    left, right = st.columns([4, 1])
    text = left.text_input(
        "Search",
        key="search",
        bind="query-params",
        placeholder="Part of a path, error message or evidence, e.g. ord_7f3a or 'already exists'",
    )
    limit = right.selectbox("Rows", LIMITS, index=1, key="rows")
    conflict_list(view, view.filters, Drill(text=text or ""), key="explorer", limit=limit)


page("Explorer", "Every 409 in the filters, with the evidence behind its cause.", body)
