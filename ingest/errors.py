"""The one exception tree: every foreseeable failure, phrased as one sentence for the user.

Library errors (duckdb, OS, TOML) are translated at the boundary with `raise ... from exc`; the CLI
catches `ConflictRadarError` once and prints its message.
"""

from __future__ import annotations


class ConflictRadarError(Exception):
    """Base class; `str(error)` is the sentence shown to the user."""

    exit_code = 1


class ConfigError(ConflictRadarError):
    """A bad `conflictradar.toml`, environment variable or option value."""


class UsageError(ConflictRadarError):
    """A command line that cannot be run as given (exit code 2)."""

    exit_code = 2


class InputError(ConflictRadarError):
    """A log path that does not exist, cannot be read, or is in no known format."""


class DatabaseError(ConflictRadarError):
    """The database file cannot be opened or used."""


class DatabaseLockedError(DatabaseError):
    """Another process holds the database file for writing."""


class QueryRefusedError(ConflictRadarError):
    """A SQL statement the read-only surface will not run."""
