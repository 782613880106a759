"""`python -m conflictradar.dashboard.launch run APP ...`: `streamlit run`, with the pages' heavy
imports warmed before the server starts.

Streamlit imports a page's modules on the first run of its script, so without this the first
visitor of a fresh dashboard waits for polars, DuckDB, pyarrow and plotly's figure classes
(1-2 s of CPU on a small machine) on top of the page itself.
"""

from __future__ import annotations

import sys

# When set, each full run of a page appends one JSON line to this file: its script time and the
# time its reads took (dashboard.data; bench.dashboard_live splits a page's time with it).
TIMINGS_ENV = "CONFLICTRADAR_PAGE_TIMINGS"  # not a settings section: ignored there


def warm() -> None:
    """Import what the pages use and build one figure (plotly loads its validators lazily).

    Only modules without Streamlit caches: those must be created once the runtime exists."""
    try:
        import duckdb  # noqa: F401
        import pandas  # noqa: F401  (Streamlit's tables convert through it)
        import polars as pl
        import pyarrow  # noqa: F401
        import pytz  # noqa: F401  (times in tables)

        from conflictradar.dashboard import charts
        from conflictradar.ingest import alert_reads, confidence_reads, reads  # noqa: F401

        charts.cause_share(pl.DataFrame({"cause": ["unknown"], "conflicts": [1]})).to_json()
    except Exception:  # warming is best effort: the pages import these anyway
        pass


def main() -> None:
    from streamlit.web.cli import main as streamlit_main

    # Before the server starts, not beside it: plotly's lazily built classes are not safe to
    # build from two threads at once (Streamlit's own import builds its theme with them).
    warm()
    sys.exit(streamlit_main(prog_name="streamlit"))


if __name__ == "__main__":
    main()
