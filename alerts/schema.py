"""Alerts -> store: the tables the alerts package owns in the conflictradar DuckDB file.

`alert_state` is the lifecycle's memory, `alert_incidents` the open incidents (alerts grouped
into one message), `alert_events` every state change, `alert_notifications`
what was said, `alert_outbox` one row per (notification, channel) still to deliver or done, and
`deliveries` every attempt. No column ever holds a secret: channels are stored by name.
No primary keys: DuckDB checks them eagerly on UPDATE, and uniqueness is kept by the code.
"""

from __future__ import annotations

import duckdb

DDL = """
CREATE TABLE IF NOT EXISTS alert_state (
    rule VARCHAR, scope VARCHAR, scope_value VARCHAR, state VARCHAR, since TIMESTAMPTZ,
    active_since TIMESTAMPTZ, quiet_since TIMESTAMPTZ, firing_since TIMESTAMPTZ,
    last_notified TIMESTAMPTZ, fire_starts TIMESTAMPTZ[], value BIGINT, baseline DOUBLE,
    score DOUBLE, flapping BOOLEAN, updated TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS alert_incidents (
    grp VARCHAR, id VARCHAR, label VARCHAR, opened TIMESTAMPTZ, announced TIMESTAMPTZ,
    last_sent TIMESTAMPTZ, told VARCHAR[], items VARCHAR, updated TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS alert_events (
    id VARCHAR, ts TIMESTAMPTZ, rule VARCHAR, scope VARCHAR, scope_value VARCHAR, state VARCHAR,
    previous VARCHAR, repeat BOOLEAN, flapping BOOLEAN, value BIGINT, baseline DOUBLE,
    score DOUBLE, window_s DOUBLE, message VARCHAR, notification_id VARCHAR
);
CREATE TABLE IF NOT EXISTS alert_notifications (
    id VARCHAR, created TIMESTAMPTZ, rule VARCHAR, status VARCHAR, test BOOLEAN,
    alerts INTEGER, body VARCHAR
);
CREATE TABLE IF NOT EXISTS alert_outbox (
    key VARCHAR, notification_id VARCHAR, channel VARCHAR, rule VARCHAR, created TIMESTAMPTZ,
    deadline TIMESTAMPTZ, state VARCHAR, attempts INTEGER, next_attempt_at TIMESTAMPTZ,
    last_status SMALLINT, last_error VARCHAR, updated TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS deliveries (
    id VARCHAR, notification_id VARCHAR, delivery_key VARCHAR, channel VARCHAR,
    channel_type VARCHAR, attempt INTEGER, ts TIMESTAMPTZ, outcome VARCHAR,
    status_code SMALLINT, error VARCHAR, duration_ms DOUBLE, next_attempt_at TIMESTAMPTZ,
    delivered BOOLEAN
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the alerts tables if they are missing (idempotent)."""
    con.execute(DDL)
