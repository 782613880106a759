"""Security: a hostile or broken configuration is one sentence, never a traceback or a disabled
limit: non-finite and out-of-range numbers (TOML `inf`/`nan`, huge integers, through the file
and the environment), files that are not UTF-8, folders given as config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from conflictradar.cli import main as cli
from conflictradar.ingest.settings import load_settings

BAD_VALUES = [
    ("[sql]\ntimeout = inf\n", "sql.timeout"),
    ("[sql]\ntimeout = nan\n", "sql.timeout"),
    ("[sql]\ntimeout = -inf\n", "sql.timeout"),
    ("[sql]\ntimeout = 1e400\n", "sql.timeout"),
    ('[sql]\ntimeout = "99999999999d"\n', "sql.timeout"),
    ("[sql]\nmax_rows = 99999999999999999999999\n", "sql.max_rows"),
    ("[sql]\nmax_rows = 0\n", "sql.max_rows"),
    ('[sql]\nmemory_limit = "0GB"\n', "sql.memory_limit"),
    ('[sql]\nmemory_limit = "99999999999999GB"\n', "sql.memory_limit"),
    ('[sql]\nmemory_limit = "inf GB"\n', "sql.memory_limit"),
    ("[watch]\nretention_days = inf\n", "watch.retention_days"),
    ("[watch]\nretention_days = nan\n", "watch.retention_days"),
    ("[watch]\nretention_days = 1e308\n", "watch.retention_days"),
    ("[watch]\npoll_interval = nan\n", "watch.poll_interval"),
    ("[classify]\nrace_window = inf\n", "classify.race_window"),
    ("[classify]\nretry_window = nan\n", "classify.retry_window"),
    ("[ingest]\nblock_mb = 1000000\n", "ingest.block_mb"),
    ("[ingest]\nmax_line_mb = 4096\n", "ingest.max_line_mb"),
    ("[dashboard]\nport = 70000\n", "dashboard.port"),
]


def _one_sentence(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code in (1, 2)
    assert out == ""
    assert err.startswith("conflictradar: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("toml", "key"), BAD_VALUES, ids=[b[0].strip() for b in BAD_VALUES])
def test_bad_numbers_in_the_file_are_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    code = cli(["sql", "SELECT 1", "--db", str(tmp_path / "x.duckdb"), "--config", str(cfg)])
    assert key in _one_sentence(capsys, code)


ENV = [
    ("CONFLICTRADAR_SQL_TIMEOUT", "inf"),
    ("CONFLICTRADAR_SQL_TIMEOUT", "nan"),
    ("CONFLICTRADAR_SQL_MAX_ROWS", "1" + "0" * 40),
    ("CONFLICTRADAR_INGEST_BLOCK_MB", "99999"),
    ("CONFLICTRADAR_WATCH_RETENTION_DAYS", "inf"),
]


@pytest.mark.parametrize(("name", "value"), ENV, ids=[f"{n}={v[:12]}" for n, v in ENV])
def test_bad_numbers_from_the_environment_are_refused(name: str, value: str) -> None:
    from conflictradar.ingest.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_settings(db="x.duckdb", env={name: value})
    assert "\n" not in str(info.value)


def test_a_config_file_that_is_not_utf8_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes('[sql]\n# Größe\ntimeout = "5s"\n'.encode("latin-1"))
    code = cli(["sql", "SELECT 1", "--db", str(tmp_path / "x.duckdb"), "--config", str(cfg)])
    assert "not UTF-8" in _one_sentence(capsys, code)


def test_a_folder_as_config_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(["sql", "SELECT 1", "--db", str(tmp_path / "x.duckdb"), "--config", str(tmp_path)])
    assert "folder" in _one_sentence(capsys, code)


def test_good_limits_still_load(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text('[sql]\ntimeout = "30s"\nmemory_limit = "512MB"\nmax_rows = 500\n'
                   "[ingest]\nblock_mb = 64\n[watch]\nretention_days = 90\n")  # fmt: skip
    settings = load_settings(config=cfg, db="x.duckdb", env={})
    assert (settings.sql.timeout_s, settings.sql.memory_limit, settings.sql.max_rows) == (
        30.0, "512MB", 500)  # fmt: skip
    assert settings.ingest.block_bytes == 64 << 20
    assert settings.watch.retention_days == 90
