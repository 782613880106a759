"""`python -m conflictradar.dashboard.launch run APP ...`: `streamlit run`, with the pages' heavy
imports warmed before the server starts.

Streamlit imports a page's modules on the first run of its script, so without this the first
visitor of a fresh dashboard waits for polars, DuckDB, pyarrow and plotly's figure classes
(1-2 s of CPU on a small machine) on top of the page itself.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any

# When set, each full run of a page appends one JSON line to this file: its script time and the
# time its reads took (dashboard.data; bench.dashboard_live splits a page's time with it).
TIMINGS_ENV = "CONFLICTRADAR_PAGE_TIMINGS"  # not a settings section: ignored there


def warm() -> None:
    """Import what the pages use, build each kind of figure once (plotly loads the validators of
    each trace type lazily: ~0.1 s for the first bar chart) and open DuckDB once.

    Only modules without Streamlit caches: those must be created once the runtime exists."""
    try:
        import inspect
        from datetime import UTC, datetime

        import duckdb
        import pandas  # noqa: F401  (Streamlit's tables convert through it)
        import polars as pl
        import pyarrow  # noqa: F401
        import pytz  # noqa: F401  (times in tables)

        from conflictradar.dashboard import charts
        from conflictradar.ingest import alert_reads, confidence_reads, reads  # noqa: F401

        at = datetime(2025, 1, 1, tzinfo=UTC)
        one = {"endpoint": ["/a"], "cause": ["unknown"], "conflicts": [1], "requests": [2]}
        frame = pl.DataFrame({**one, "bucket": [at], "rate": [0.5], "main_cause": ["unknown"],
                              **{level: [1] for level in charts.CONFIDENCE_COLORS}})  # fmt: skip
        for build in (charts.timeline, charts.cause_trend, charts.heatmap, charts.treemap,
                      charts.cause_share, charts.confidence_bars):  # fmt: skip
            build(frame).to_json()
        charts.ranking(frame, "endpoint").to_json()
        duckdb.connect(":memory:").close()
        # Streamlit's first element of the first run asks whether it runs in a REPL through
        # inspect.stack(), which maps every loaded module to its file once (~0.1 s).
        inspect.stack()
    except Exception:  # warming is best effort: the pages import these anyway
        pass


def no_delay() -> None:
    """Send each response at once: TCP_NODELAY on the connections the server accepts.

    Streamlit binds its listening socket itself (`socket.socket(family)`, protocol left at 0)
    and hands it to uvicorn; asyncio turns Nagle's algorithm off only on accepted sockets whose
    protocol reads IPPROTO_TCP, so here it stays on. Then every response after the first on a
    keep-alive connection waits for the browser's delayed ACK (~40 ms on Linux) before its body
    goes out. A fresh browser fetches Streamlit's ~60 start-up scripts over 6 connections: 0.43 s
    with Nagle on, 0.07 s with it off (the first page's DOMContentLoaded came ~0.25 s sooner).
    Accepted sockets inherit TCP_NODELAY from the listener, so it is set there.
    """
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError:  # a Streamlit without the Starlette server: nothing to fix
        return
    bind = getattr(starlette_server, "_bind_socket", None)
    if bind is None or getattr(bind, "_no_delay", False):
        return

    def _bind_socket(*args: Any, **kwargs: Any) -> socket.socket:
        sock = bind(*args, **kwargs)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    _bind_socket._no_delay = True  # type: ignore[attr-defined]
    starlette_server._bind_socket = _bind_socket


def main() -> None:
    from streamlit.web.cli import main as streamlit_main

    # Before the server starts, not beside it: plotly's lazily built classes are not safe to
    # build from two threads at once (Streamlit's own import builds its theme with them).
    warm()
    no_delay()
    sys.exit(streamlit_main(prog_name="streamlit"))


if __name__ == "__main__":
    main()
