"""Shared fixtures: where the real logs live, and small helpers to parse lines with a format."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_LOGS = REPO.parent / "shared" / "real_logs"
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture()
def logs(tmp_path: Path) -> Path:
    """An empty folder for a test's log files (the watch tests follow it)."""
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def real_logs() -> Path:
    if not REAL_LOGS.is_dir():
        pytest.fail(f"real logs not found at {REAL_LOGS}: the repository must sit beside shared/")
    return REAL_LOGS


# The longest test files, sent to a worker first under `make test`'s two pytest-xdist workers
# (`--dist loadfile --no-loadscope-reorder`, which keeps this order instead of sorting files by
# their number of tests): started last, the demo alone would leave one worker idle for minutes.
# (The browser test runs before them, alone: see the Makefile.)
SLOW_FIRST = ("test_demo.py", "test_watch_faults.py", "test_wheel.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept
