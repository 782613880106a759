"""Panels several pages share: tables with CSV download, and conflicts with their evidence.

A conflict list shows the conflicts behind a hotspot or a filter; the conflict picked in it (a
row click, or the newest by default) is shown with its evidence, its raw log line (file:line) and
the remediation of its cause.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from conflictradar.dashboard.frame import View
from conflictradar.ingest import escape, reads
from conflictradar.ingest.reads import Drill, Filters

TIME = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", timezone="UTC")
COLUMNS: Mapping[str, Any] = {
    "rate": st.column_config.NumberColumn("409 rate", format="percent"),
    "share": st.column_config.NumberColumn("share", format="percent"),
    "ts": TIME,
    "last_seen": TIME,
    "conflicts": st.column_config.NumberColumn("409s", format="localized"),
    "requests": st.column_config.NumberColumn("requests", format="localized"),
}


def csv(df: pl.DataFrame) -> bytes:
    """CSV of any frame: nested values (lists, structs) are written as their text."""
    nested = [c for c, t in df.schema.items() if t.is_nested() or t == pl.Object]
    with warnings.catch_warnings():
        # polars suggests a cast instead, but it cannot cast lists to text.
        warnings.simplefilter("ignore", pl.exceptions.PolarsInefficientMapWarning)
        flat = df.with_columns(pl.col(c).map_elements(str, return_dtype=pl.String) for c in nested)
    return flat.write_csv().encode()


def text(value: object) -> str:
    """Log-derived text for st.markdown: shown as written, never as markup, links or images."""
    return escape.markdown(value)


def code(value: object) -> str:
    """Log-derived text as inline code (nothing is markup inside), its backticks made harmless."""
    return escape.markdown_code(value)


Cell = Callable[[Any], str]  # a value -> the text shown in a Markdown table's cell


def markdown_table(df: pl.DataFrame, columns: Mapping[str, tuple[str, Cell]]) -> str:
    """`df` as a GFM table: column -> (header, the cell's text). Every cell is escaped
    (`escape.markdown`: no markup, link or autolink, and a `|` never splits a cell); columns whose
    header starts with "#" are numbers, right-aligned (the "#" is not shown).

    For a short, fixed summary it draws far cheaper than `st.dataframe`: a page's first load in
    a fresh browser skips the data grid's ~1.5 MB of JavaScript (bench.dashboard_cold)."""
    heads = [h.removeprefix("#") for h, _ in columns.values()]
    rule = ["--:" if h.startswith("#") else "---" for h, _ in columns.values()]
    lines = [
        "| " + " | ".join(escape.markdown(h) for h in heads) + " |",
        "|" + "|".join(rule) + "|",
    ]
    for row in df.select(list(columns)).iter_rows(named=True):
        cells = (escape.markdown(shown(row[c]) if row[c] is not None else "–")
                 for c, (_, shown) in columns.items())  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def download(df: pl.DataFrame, name: str, key: str) -> None:
    # The CSV is written when the button is clicked, not on every run, and the click does not
    # rerun the page.
    st.download_button(
        f"Download CSV ({df.height:,} rows)",
        partial(csv, df),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"csv_{key}",
        icon=":material/download:",
        type="tertiary",
        on_click="ignore",
    )


def table(
    df: pl.DataFrame,
    key: str,
    *,
    select: bool = False,
    height: int | None = None,
    hide: tuple[str, ...] = (),
    on_select: Callable[[], None] | None = None,
    plain: bool = False,
    columns: Mapping[str, Any] | None = None,
) -> list[int]:
    """A dataframe with CSV download; with `select`, the selected row positions.

    `on_select` runs (before the next run) when the user selects a row. `plain` keeps the
    column names as they are (a user's query), only formatting times. `columns`: column
    configs that replace the shared ones.
    """
    shown = df.drop([c for c in hide if c in df.columns])
    kwargs: dict[str, Any] = {
        "hide_index": True,
        "width": "stretch",
        "column_config": {} if plain else {k: v for k, v in COLUMNS.items() if k in shown},
    }
    kwargs["column_config"].update(columns or {})
    for col, dtype in shown.schema.items():  # every time in UTC, to the second
        if isinstance(dtype, pl.Datetime) and col not in kwargs["column_config"]:
            kwargs["column_config"][col] = TIME
    if height is not None:
        kwargs["height"] = height
    rows: list[int] = []
    if select:
        event = st.dataframe(
            shown, key=key, on_select=on_select or "rerun", selection_mode="single-row", **kwargs
        )
        rows = list(event.selection.rows)
    else:
        st.dataframe(shown, key=key, **kwargs)
    download(df, key, key)
    return rows


def file_line(file: str, line: int) -> str:
    return f"{Path(file).name}:{line}"


def conflict_detail(view: View, file: str, line: int) -> None:
    """One conflict: what happened, why (evidence), the raw line, and what to do about it."""
    df = view.fetch(reads.conflict_detail, file, line)
    if df.is_empty():
        st.info("This conflict is no longer in the database.")
        return
    c = df.row(0, named=True)
    with st.container(border=True):
        st.markdown(
            f"**{text(c['method'])} {code(c['path'])}** → 409 · {code(c['cause'])} "
            f"({text(c['confidence'] or 'unknown')}) — {c['title'] or ''}"
        )
        st.markdown(f"**Evidence:** {text(c['evidence'])}")
        if c["message"]:
            st.markdown(f"**Error message:** {text(c['message'])}")
        st.caption(
            f"{c['ts']:%Y-%m-%d %H:%M:%S} UTC · client {text(c['client_ip'] or '-')} · "
            f"**{text(file_line(c['file'], c['line']))}** ({code(c['file'])})"
        )
        others = (c["lines"] or [])[1:]
        if others:
            st.caption("Same request in other tiers: " + ", ".join(code(x) for x in others))
        # As plain text, verbatim: st.code would load a syntax highlighter (~0.4 s per page).
        st.text(c["raw"] or "(raw line not kept)")
        st.markdown(f"**Remediation:** {c['remediation'] or 'none recorded for this cause.'}")


def conflict_list(view: View, f: Filters, drill: Drill, key: str, limit: int = 500) -> None:
    """The conflicts in `f` narrowed by `drill`, newest first, and the one picked below it."""
    df = view.fetch(reads.conflict_rows, f, drill, limit)
    if df.is_empty():
        st.info("No conflicts match.")
        return
    total = int(df["total"][0])
    more = f" (the newest {df.height:,} shown)" if total > df.height else ""
    st.caption(f"{total:,} conflicts{more}. Select a row to see its raw line and remediation.")
    shown = df.with_columns(
        at=pl.concat_str(
            pl.col("file").str.extract(r"([^/\\]+)$"), pl.lit(":"), pl.col("line").cast(pl.String)
        )
    ).select(
        "ts",
        "method",
        "path",
        "cause",
        "confidence",
        "evidence",
        "client_ip",
        "endpoint",
        "at",
        "user_agent",
        "message",
        "request_id",
        "file",
        "line",
    )
    height = min(320, 40 + 35 * shown.height)
    rows = table(shown, key, select=True, height=height, hide=("file", "line"))
    pick = shown.row(rows[0] if rows else 0, named=True)
    if not rows:
        st.caption("Newest conflict:")
    conflict_detail(view, pick["file"], pick["line"])
