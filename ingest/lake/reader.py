"""Reading a lake: the one-machine tables as DuckDB views over its Parquet files.

Each call opens an in-memory DuckDB, creates the tables the one-machine schema has (so every
read query and the SQL page work unchanged), replaces the lake's tables by views over the files
the manifest names (committed ranges only: a run in progress is not half visible), and then
closes the doors: file access only inside the lake, external access off, configuration locked.
Only single SELECTs run (`ingest.query`), so nothing can be written. The views keep the hive
partition columns `date` and `hour` (and `source` for rows of one input): filtering on them
skips whole files; filters on `ts`/`minute` skip row groups by their Parquet statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ingest.causes import CAUSES
from ingest.endpoints import Fold
from ingest.errors import DatabaseError
from ingest.lake import layout
from ingest.lake.manifest import load_units
from ingest.query import QueryResult, check_statement, run_query, sandbox_config, uncapped
from ingest.settings import SqlSettings
from ingest.store import DDL

Params = Sequence[object] | Mapping[str, object] | None
HIVE_TYPES = {"date": "DATE", "hour": "INTEGER", "source": "VARCHAR"}
FOLDED_TABLES = ("requests", "conflicts", "request_minutes", "conflict_minutes")


def fold_sql(column: str, folds: list[Fold]) -> str:
    """The endpoint with the lake's folds applied, as the one-machine store rewrites it."""
    expr = column
    for fold in folds:
        prefix = fold.prefix.replace("'", "''")
        pattern = fold.pattern.replace("'", "''")
        replacement = (fold.prefix.replace("\\", "\\\\") + "/{id}\\1").replace("'", "''")
        expr = (
            f"CASE WHEN starts_with({expr}, '{prefix}/') THEN"
            f" regexp_replace({expr}, '{pattern}', '{replacement}') ELSE {expr} END"
        )
    return expr


@dataclass
class LakeFiles:
    """The files of each table a reader may see, and the folds to apply."""

    tables: dict[str, list[str]]
    folds: list[Fold]


def lake_files(lake: Path) -> LakeFiles:
    units = load_units(lake)
    tables: dict[str, list[str]] = {t: [] for t in layout.ALL_TABLES}
    for u in units:
        for rel in u.files:
            tables[rel.split("/", 1)[0]].append(str(lake / rel))
    for table in layout.HOUR_TABLES:
        root = lake / table
        if root.is_dir():
            tables[table] = sorted(str(p) for p in root.rglob("part-0.parquet"))
    saved = lake / layout.FOLDS
    folds = [Fold(str(p), int(k)) for p, k in layout.read_json(saved)] if saved.exists() else []
    return LakeFiles(tables, folds)


def open_lake(lake: Path, sql: SqlSettings) -> duckdb.DuckDBPyConnection:
    """A sandboxed connection with the lake's tables as views (see the module docstring)."""
    if not (lake / layout.UNITS).is_dir():
        raise DatabaseError(
            f"{lake} is not a conflictradar lake yet; run `conflictradar ingest PATH --lake {lake}`"
        )
    files = lake_files(lake)
    # The doors close after the views exist (they need the lake's paths to be created).
    config: dict[str, Any] = {
        k: v
        for k, v in sandbox_config(sql).items()
        if k not in ("enable_external_access", "lock_configuration")
    }
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(DDL)
        con.executemany(
            "INSERT INTO causes VALUES (?, ?, ?, ?)",
            [[c.cause.value, c.title, c.description, c.remediation] for c in CAUSES],
        )
        for table, paths in files.tables.items():
            if not paths:
                continue  # the empty table of the one-machine schema stands in
            description = con.execute(f"SELECT * FROM {table} LIMIT 0").description or []
            columns = [d[0] for d in description]
            select = [
                fold_sql("endpoint", files.folds) + " AS endpoint"
                if c == "endpoint" and table in FOLDED_TABLES and files.folds
                else c
                for c in columns
            ]
            extra = ["date", "hour"] if table != "rejects" else []
            if table in layout.UNIT_TABLES or table == "rejects":
                extra.append("source")
            types = "{" + ", ".join(f"'{c}': {HIVE_TYPES[c]}" for c in extra) + "}"
            listing = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
            con.execute(f"DROP TABLE {table}")
            con.execute(
                f"CREATE VIEW {table} AS SELECT {', '.join(select + extra)} FROM read_parquet("
                f"{listing}, hive_partitioning = true, hive_types = {types},"
                ")"
            )
        root = str(lake.resolve()).replace("'", "''").rstrip("/") + "/"
        con.execute(f"SET allowed_directories = ['{root}']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


@dataclass
class LakeReader:
    """The `ingest.reader.Reader` protocol over a lake."""

    lake: Path
    sql: SqlSettings

    def exists(self) -> bool:
        return (self.lake / layout.UNITS).is_dir()

    def query(self, sql: str, params: Params = None) -> pa.Table:
        con = open_lake(self.lake, self.sql)
        try:
            check_statement(con, sql)
            return con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"read query failed: {text}") from exc
        finally:
            con.close()

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        out = pl.from_arrow(self.query(sql, params))
        assert isinstance(out, pl.DataFrame)
        return out

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        con = open_lake(self.lake, self.sql)
        try:
            return run_query(con, sql, self.sql if capped else uncapped(self.sql))
        finally:
            con.close()
