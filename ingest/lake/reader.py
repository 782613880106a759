"""Reading a lake: the one-machine tables as DuckDB views over its Parquet files.

Each call opens an in-memory DuckDB, creates the tables the one-machine schema has (so every
read query and the SQL page work unchanged), replaces the lake's tables by views over the files
the manifest names (committed ranges only: a run in progress is not half visible), and then
closes the doors: file access only inside the lake, external access off, configuration locked.
Only reading SELECTs run, in read-only transactions (`ingest.sandbox`), so nothing can be
written. The views keep the hive
partition columns `date` and `hour` (and `source` for rows of one input): filtering on them
skips whole files; filters on `ts`/`minute` skip row groups by their Parquet statistics.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from conflictradar.ingest.causes import CAUSES
from conflictradar.ingest.database import DDL
from conflictradar.ingest.endpoints import Fold
from conflictradar.ingest.errors import DatabaseError
from conflictradar.ingest.lake import layout
from conflictradar.ingest.lake.manifest import load_units
from conflictradar.ingest.sandbox import (
    QueryResult,
    read_query,
    run_query,
    sandbox_config,
    uncapped,
)
from conflictradar.ingest.settings import SqlSettings

Params = Sequence[object] | Mapping[str, object] | None
HIVE_TYPES = {"date": "DATE", "hour": "INTEGER", "source": "VARCHAR"}
FOLDED_TABLES = ("requests", "conflicts", "request_minutes", "conflict_minutes")


def _scan(
    select: list[str], paths: list[str], by_hour: bool, by_source: bool, pad_source: bool
) -> str:
    """SELECT the columns (and the hive partition columns) of some Parquet files."""
    extra = (["date", "hour"] if by_hour else []) + (["source"] if by_source else [])
    types = "{" + ", ".join(f"'{c}': {HIVE_TYPES[c]}" for c in extra) + "}"
    listing = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    # Rows of both kinds of request_minutes files line up: NULL stands for a missing source.
    cols = select + extra + (["NULL::VARCHAR AS source"] if pad_source else [])
    return (
        f"SELECT {', '.join(cols)} FROM read_parquet({listing}, hive_partitioning = true,"
        f" hive_types = {types})"
    )


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
        # GLOBAL: the cursors each call gets are sessions of their own.
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        # Files are immutable under their names (a rewrite is a rename): their footers can be
        # kept between queries of this connection.
        con.execute("SET parquet_metadata_cache = true")
        con.execute(DDL)
        # Readers look for their tables in duckdb_tables(); here most of them are views.
        con.execute(
            "CREATE MACRO duckdb_tables() AS TABLE SELECT * FROM system.main.duckdb_tables()"
            " UNION ALL BY NAME SELECT database_name, database_oid, schema_name, schema_oid,"
            " view_name AS table_name, view_oid AS table_oid, comment, tags, internal, temporary,"
            " sql FROM system.main.duckdb_views() WHERE NOT internal"
        )
        con.executemany(
            "INSERT INTO causes VALUES (?, ?, ?, ?)",
            [[c.cause.value, c.title, c.description, c.remediation] for c in CAUSES],
        )
        for table in files.tables:
            if table == layout.CORRECTIONS:
                continue  # read as part of request_minutes
            by_source = table in layout.UNIT_TABLES or table == "rejects"
            parts = [(files.tables[table], by_source, False)]
            if table == "request_minutes":  # plus the corrections for lines joined across tiers
                parts.append((files.tables[layout.CORRECTIONS], False, True))
            parts = [part for part in parts if part[0]]
            if not parts:
                continue  # the empty table of the one-machine schema stands in
            description = con.execute(f"SELECT * FROM {table} LIMIT 0").description or []
            columns = [d[0] for d in description]
            select = [
                fold_sql("endpoint", files.folds) + " AS endpoint"
                if c == "endpoint" and table in FOLDED_TABLES and files.folds
                else c
                for c in columns
            ]
            scans = [
                _scan(select, paths, table != "rejects", src, pad) for paths, src, pad in parts
            ]
            con.execute(f"DROP TABLE {table}")
            con.execute(f"CREATE VIEW {table} AS " + " UNION ALL ".join(scans))
        root = str(lake.resolve()).replace("'", "''").rstrip("/") + "/"
        con.execute(f"SET allowed_directories = ['{root}']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def lake_version(lake: Path) -> tuple[int | None, ...]:
    """Changes whenever a range is committed, an hour re-explained or the folds change."""
    stamps: list[int | None] = []
    for rel in (layout.UNITS, layout.CLASSIFIED, layout.FOLDS):
        try:
            stamps.append((lake / rel).stat().st_mtime_ns)
        except FileNotFoundError:
            stamps.append(None)
    return tuple(stamps)


@dataclass
class LakeReader:
    """The `ingest.reader.Reader` protocol over a lake.

    The sandboxed connection is built once per version of the lake and shared (each call gets
    its own cursor): building it lists the manifest, which costs more than most page queries.
    """

    lake: Path
    sql: SqlSettings
    _con: duckdb.DuckDBPyConnection | None = None
    _version: tuple[int | None, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def exists(self) -> bool:
        return (self.lake / layout.UNITS).is_dir()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        version = lake_version(self.lake)
        with self._lock:
            if self._con is None or version != self._version:
                # A previous connection closes once its last cursor is gone.
                self._con, self._version = open_lake(self.lake, self.sql), version
            return self._con.cursor()

    def query(self, sql: str, params: Params = None) -> pa.Table:
        con = self._cursor()
        try:
            return read_query(con, sql, params)
        finally:
            con.close()

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        out = pl.from_arrow(self.query(sql, params))
        assert isinstance(out, pl.DataFrame)
        return out

    def user_query(self, sql: str, capped: bool = True) -> QueryResult:
        con = self._cursor()
        try:
            return run_query(con, sql, self.sql if capped else uncapped(self.sql))
        finally:
            con.close()


_READERS: dict[tuple[Path, SqlSettings], LakeReader] = {}


def lake_reader(lake: Path, sql: SqlSettings) -> LakeReader:
    """One reader per lake and settings in a process (the dashboard's pages share it)."""
    key = (lake.resolve(), sql)
    if key not in _READERS:
        _READERS[key] = LakeReader(key[0], sql)
    return _READERS[key]
