"""Read queries behind the dashboard's picture of certainty: how many conflicts a status, a race
or a recognised error text proves (`certain`) and how many only the method or path suggests
(`inferred`), per cause and per endpoint (SPEC 3, `conflicts.confidence`)."""

from __future__ import annotations

import polars as pl

from conflictradar.ingest.read_filters import Filters, where_clause
from conflictradar.ingest.reader import Reader

LEVELS = ("certain", "inferred", "unknown")

_COUNTS = ", ".join(f"count(*) FILTER (WHERE confidence = '{c}') AS {c}" for c in LEVELS)


def confidence_by_cause(reader: Reader, f: Filters) -> pl.DataFrame:
    """cause, conflicts, certain, inferred, unknown: the conflicts of each cause by confidence."""
    raw, params = where_clause(f, "ts", cause=True)
    return reader.frame(
        f"SELECT cause, count(*) AS conflicts, {_COUNTS} FROM conflicts WHERE {raw}"
        " GROUP BY cause ORDER BY conflicts DESC, cause",
        params,
    )


def confidence_by_endpoint(reader: Reader, f: Filters, limit: int = 15) -> pl.DataFrame:
    """The endpoints with the most conflicts: how much of each one's picture is proven."""
    raw, params = where_clause(f, "ts", cause=True)
    return reader.frame(
        f"SELECT endpoint, count(*) AS conflicts, {_COUNTS},"
        " round(certain / count(*), 3) AS certain_share, mode(cause) AS main_cause"
        f" FROM conflicts WHERE {raw} GROUP BY endpoint"
        " ORDER BY conflicts DESC, endpoint LIMIT $limit",
        params | {"limit": limit},
    )
