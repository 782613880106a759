"""Read queries behind the dashboard's Alerts page: the tables the alerts package writes (its own
schema), read only if they exist, never showing a column that may carry a secret."""

from __future__ import annotations

import polars as pl

from conflictradar.ingest.reader import Reader
from conflictradar.ingest.reads import Filters

# Written by the alerts package (its own schema); read here only if present.
ALERT_TABLES = ("alert_events", "deliveries", "alert_state")
# Columns of alert tables never shown: they may carry endpoints with credentials in them.
SECRET_WORDS = ("url", "secret", "token", "signature", "password", "authorization", "header")


def alert_columns(reader: Reader) -> pl.DataFrame:
    """table_name, column_name, data_type of the alert tables that exist (none: no alerts yet)."""
    return reader.frame(
        "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        " WHERE schema_name = 'main' AND list_contains($tables, table_name)"
        " ORDER BY table_name, column_index",
        {"tables": list(ALERT_TABLES)},
    )


def alert_rows(
    reader: Reader, f: Filters, table: str, limit: int = 1000, in_range: bool = True
) -> pl.DataFrame:
    """The newest rows of an alert table, without secret-looking columns.

    `in_range`: only rows whose first timestamp column falls in the filters' time range. Alerts
    scoped to an endpoint or a cause are narrowed to the filters' endpoints and causes.
    """
    if table not in ALERT_TABLES:
        raise ValueError(f"not an alert table: {table}")
    cols = alert_columns(reader).filter(pl.col("table_name") == table)
    names = cols["column_name"].to_list()
    shown = [c for c in names if not any(w in c.lower() for w in SECRET_WORDS)]
    if not shown:
        return pl.DataFrame()
    times = cols.filter(pl.col("data_type").str.starts_with("TIMESTAMP"))["column_name"].to_list()
    where, params = ["true"], dict[str, object](limit=limit)
    if in_range and times:
        where.append(f'"{times[0]}" >= $start AND "{times[0]}" < $end')
        params |= {"start": f.start, "end": f.end}
    if {"scope", "scope_value"} <= set(names):
        for scope, values in (("endpoint", f.endpoints), ("cause", f.causes)):
            if values:
                where.append(
                    f"(scope IS DISTINCT FROM '{scope}' OR list_contains(${scope}s, scope_value))"
                )
                params[f"{scope}s"] = list(values)
    order = f'ORDER BY "{times[0]}" DESC NULLS LAST' if times else ""
    select = ", ".join(f'"{c}"' for c in shown)
    return reader.frame(
        f"SELECT {select} FROM {table} WHERE {' AND '.join(where)} {order} LIMIT $limit", params
    )
