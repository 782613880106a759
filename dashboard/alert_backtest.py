"""The Alerts page's backtest: the current rules replayed over the last 24 h.

The dashboard never imports the alerts package, so it asks the product itself: `conflictradar
alerts backtest --format json` (SPEC 6) as a child process, with the same database and config the
page uses (CONFLICTRADAR_DB / CONFLICTRADAR_CONFIG). It reads through the watcher when one runs,
sends nothing and writes nothing. Cached for a few minutes: a day's replay takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from conflictradar.ingest.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120.0
CACHE_S = 300.0
COLUMNS = {
    "rule": pl.String,
    "scope": pl.String,
    "key": pl.String,
    "fired_at": pl.String,
    "resolved_at": pl.String,
    "value": pl.Float64,
    "baseline": pl.Float64,
    "count": pl.Int64,
    "requests": pl.Int64,
    "reason": pl.String,
}


@dataclass(frozen=True)
class Replay:
    alerts: pl.DataFrame  # one row per alert that would have fired
    error: str = ""


def _command(since: str) -> list[str]:
    return [sys.executable, "-m", "conflictradar", "alerts", "backtest", "--since", since,
            "--format", "json"]  # fmt: skip


def parse_lines(text: str) -> pl.DataFrame:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return (
        pl.DataFrame(rows, schema=COLUMNS, orient="row") if rows else pl.DataFrame(schema=COLUMNS)
    )


@st.cache_data(ttl=CACHE_S, show_spinner="Replaying the rules over the last 24 h…")
def replay(db: str, config: str | None, since: str = "24h") -> Replay:
    """Run the backtest for the database and config at these paths (the cache key)."""
    env = dict(os.environ, CONFLICTRADAR_DB=db)
    if config:
        env["CONFLICTRADAR_CONFIG"] = config
    else:
        env.pop("CONFLICTRADAR_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            _command(since), env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Replay(pl.DataFrame(schema=COLUMNS), f"the backtest took over {TIMEOUT_S:g} s")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return Replay(pl.DataFrame(schema=COLUMNS), lines[-1] if lines else "backtest failed")
    return Replay(parse_lines(done.stdout))


def last_day(settings: Settings) -> Replay:
    config = str(settings.config_path.resolve()) if settings.config_path else None
    return replay(str(settings.db.resolve()), config)
