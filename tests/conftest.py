"""Shared fixtures: where the real logs live, and small helpers to parse lines with a format."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_LOGS = REPO.parent / "shared" / "real_logs"
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="session")
def real_logs() -> Path:
    if not REAL_LOGS.is_dir():
        pytest.fail(f"real logs not found at {REAL_LOGS}: the repository must sit beside shared/")
    return REAL_LOGS
