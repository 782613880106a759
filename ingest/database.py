"""The database file's tables (its schema, one version) and opening it: one sentence for every
DuckDB error at the boundary, and waiting out another process's lock."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb

from conflictradar.ingest.errors import DatabaseError, DatabaseLockedError

SCHEMA_VERSION = 1

REQUEST_COLUMNS = (
    "ts", "file", "line", "format", "host", "client_ip", "user_agent", "method", "path", "query",
    "endpoint", "status", "upstream_status", "bytes", "duration_ms", "request_id", "message",
)  # fmt: skip

DDL = """
CREATE TABLE IF NOT EXISTS requests (
    ts TIMESTAMPTZ, file VARCHAR, line BIGINT, format VARCHAR, host VARCHAR, client_ip VARCHAR,
    user_agent VARCHAR, method VARCHAR, path VARCHAR, query VARCHAR, endpoint VARCHAR,
    status SMALLINT, upstream_status SMALLINT, bytes BIGINT, duration_ms DOUBLE,
    request_id VARCHAR, message VARCHAR
);
CREATE TABLE IF NOT EXISTS rejects (file VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR);
-- The raw text of every 409 line, for the explorer (other lines are not kept twice).
CREATE TABLE IF NOT EXISTS conflict_lines (file VARCHAR, line BIGINT, ts TIMESTAMPTZ, raw VARCHAR);
-- One row per file generation read: identity, where reading stopped, and parser state.
CREATE TABLE IF NOT EXISTS files (
    file_id BIGINT PRIMARY KEY,
    path VARCHAR NOT NULL,
    dev UBIGINT, inode UBIGINT,
    fp_len INTEGER NOT NULL, fp_hash VARCHAR NOT NULL,
    read_offset BIGINT NOT NULL, lines BIGINT NOT NULL,
    tail_start BIGINT, tail_line BIGINT,
    format VARCHAR, envelope VARCHAR, parser_state VARCHAR,
    compressed BOOLEAN NOT NULL DEFAULT false,
    first_seen TIMESTAMPTZ, updated TIMESTAMPTZ
);
-- Every 409 with its cause and evidence (SPEC section 5), kept current by ingest.classify.
CREATE TABLE IF NOT EXISTS conflicts (
    ts TIMESTAMPTZ, file VARCHAR, line BIGINT, format VARCHAR, host VARCHAR, client_ip VARCHAR,
    user_agent VARCHAR, method VARCHAR, path VARCHAR, query VARCHAR, endpoint VARCHAR,
    status SMALLINT, upstream_status SMALLINT, bytes BIGINT, duration_ms DOUBLE,
    request_id VARCHAR, message VARCHAR, cause VARCHAR, evidence VARCHAR, confidence VARCHAR,
    lines VARCHAR[]
);
-- Lines joined under another line's request (a service line under its gateway's), see
-- ingest.tiers; a line not here is its request's client-facing line.
CREATE TABLE IF NOT EXISTS request_links (
    file VARCHAR, line BIGINT, ts TIMESTAMPTZ, head_file VARCHAR, head_line BIGINT,
    head_ts TIMESTAMPTZ
);
-- Every distinct error text seen, with what it matched (ingest.texts): matched once.
CREATE TABLE IF NOT EXISTS text_matches (
    msg VARCHAR, cause VARCHAR, label VARCHAR, keyword VARCHAR, rank INTEGER
);
CREATE TABLE IF NOT EXISTS causes (
    cause VARCHAR PRIMARY KEY, title VARCHAR, description VARCHAR, remediation VARCHAR
);
-- Pre-aggregated per minute, maintained at ingest, so dashboards and alerts never scan raw rows.
CREATE TABLE IF NOT EXISTS request_minutes (
    minute TIMESTAMPTZ, file VARCHAR, host VARCHAR, endpoint VARCHAR, method VARCHAR,
    status SMALLINT, requests BIGINT, bytes BIGINT, duration_ms_sum DOUBLE
);
CREATE TABLE IF NOT EXISTS conflict_minutes (
    minute TIMESTAMPTZ, file VARCHAR, host VARCHAR, endpoint VARCHAR, method VARCHAR,
    cause VARCHAR, conflicts BIGINT
);
-- Time ranges of committed batches whose 409s still need classifying (background ingest).
CREATE TABLE IF NOT EXISTS classify_pending (lo TIMESTAMPTZ, hi TIMESTAMPTZ);
-- Pending ranges whose classification failed for a reason tied to their rows (ingest.pending):
-- set aside so they stop blocking every later run; the 409s with lo <= ts <= hi keep the causes
-- they had.
CREATE TABLE IF NOT EXISTS classify_quarantine (
    lo TIMESTAMPTZ, hi TIMESTAMPTZ, reason VARCHAR, quarantined TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS endpoint_folds (prefix VARCHAR, position INTEGER, learned TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
"""

# The writer connection's sandbox (Store.open(sandboxed=True)): no file or network access
# beyond its own database, no extensions, and nobody may change that afterwards.
WRITER_SANDBOX: dict[str, Any] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}

LOCK_HINT = "is `conflictradar watch` or another ingest already running?"


def translate(exc: duckdb.Error, path: Path) -> DatabaseError:
    """One sentence for a DuckDB error at the boundary."""
    text = str(exc)
    if "lock" in text.lower() and (
        "conflicting" in text.lower() or "could not set" in text.lower()
    ):
        return DatabaseLockedError(f"database {path} is locked by another process; {LOCK_HINT}")
    if "not a valid DuckDB database" in text or "Serialization Error" in text:
        return DatabaseError(f"{path} is not a conflictradar (DuckDB) database file")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return DatabaseError(f"database {path}: {first}")


def connect(path: Path, *, read_only: bool, wait_s: float = 0.0,
            config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:  # fmt: skip
    """Open the file, retrying for up to `wait_s` while another process holds the lock."""
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            cfg = dict(config or {})
            lock = bool(cfg.pop("lock_configuration", False))
            con = duckdb.connect(str(path), read_only=read_only, config=cfg)
            # Evidence and reports print times in UTC, whatever the machine's zone. (Set after
            # opening: the time-zone extension is not loaded while the config is applied.)
            con.execute("SET TimeZone = 'UTC'")
            if lock:
                con.execute("SET lock_configuration = true")
            return con
        except duckdb.Error as exc:
            err = translate(exc, path)
            if not isinstance(err, DatabaseLockedError) or time.monotonic() >= deadline:
                raise err from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
