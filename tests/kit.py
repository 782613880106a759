"""Helpers several test modules share (not tests themselves)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, timestamps as ISO 8601 text (what the golden files hold)."""
    return frame.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()


def read_lines(path: Path) -> list[str | None]:
    """Lines as the tailer hands them over: UTF-8 with replacement, no line terminator."""
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return list(lines)


def counts(frame: pl.DataFrame) -> tuple[int, int, int]:
    """(parsed, skipped, rejected)."""
    rejected = int(frame["_reject"].is_not_null().sum())
    skipped = int(frame["_skip"].sum())
    return frame.height - rejected - skipped, skipped, rejected


def query_db(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` on the database file `db`, opened read-only and closed again."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def check_golden(target: Path, got: list[dict[str, Any]]) -> None:
    """`got` equals the golden file `target` (one row per line, so a diff points at the log
    line that changed); with UPDATE_GOLDEN=1 the file is rewritten first."""
    if os.environ.get("UPDATE_GOLDEN"):
        text = ",\n ".join(json.dumps(r, ensure_ascii=False) for r in got)
        target.write_text(f"[\n {text}\n]\n")
    assert got == json.loads(target.read_text())


def count_calls(monkeypatch: pytest.MonkeyPatch, cls: type, names: Sequence[str]) -> dict[str, int]:
    """How often each of `cls`'s methods `names` runs from now on (each still does its work)."""
    counts = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(cls, name)

        def counted(self: object, *args: object, _f: Any = original, _n: str = name) -> object:
            counts[_n] += 1
            return _f(self, *args)

        monkeypatch.setattr(cls, name, counted)
    return counts
