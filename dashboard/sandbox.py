"""A user's SQL from the SQL page -> the read API's sandbox (ingest.sandbox) -> an Outcome to show.

Kept in an imported module, not in the page script, because the outcome lives in session state
across reruns and a page script's classes are redefined on every run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from conflictradar.ingest.errors import ConflictRadarError, DatabaseLockedError
from conflictradar.ingest.reader import Reader
from conflictradar.ingest.sandbox import QueryResult


@dataclass(frozen=True)
class Outcome:
    """What became of one query: a result, or the one sentence saying why not."""

    sql: str
    result: QueryResult | None = None
    refusal: str = ""
    busy: bool = False  # refused only because a writer held the database

    def frame(self) -> pl.DataFrame:
        """The result as a DataFrame (repeated column names numbered, as polars needs)."""
        assert self.result is not None
        out = pl.from_arrow(unique_names(self.result.table))
        assert isinstance(out, pl.DataFrame)
        return out


def unique_names(table: pa.Table) -> pa.Table:
    seen: dict[str, int] = {}
    names = []
    for name in table.column_names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        names.append(name if n == 0 else f"{name}_{n + 1}")
    return table.rename_columns(names)


EXPOSED_ENV = "CONFLICTRADAR_DASHBOARD_EXPOSED"  # set by dashboard.server for --expose


def exposed() -> bool:
    """Whether this dashboard is bound off loopback, where nobody is authenticated."""
    return os.environ.get(EXPOSED_ENV) == "1"


def run(reader: Reader, sql: str) -> Outcome:
    if exposed():
        return Outcome(sql, refusal="the SQL page is switched off on a dashboard exposed to the"
                       " network (dashboard --expose)")  # fmt: skip
    try:
        return Outcome(sql, result=reader.user_query(sql))
    except DatabaseLockedError as exc:
        return Outcome(sql, refusal=str(exc), busy=True)
    except ConflictRadarError as exc:
        return Outcome(sql, refusal=str(exc))
