"""`[formats.NAME]` JSON field mappings: validated at settings load (one sentence naming the key),
usable as `--format NAME` from the command line, and still in force when a file is resumed.

The sample (sample_logs/mapped/orders-pino.jsonl) has pino-http's record shape (`level`, `time`
in epoch ms, `req.method`, `req.url`, `res.statusCode`, `responseTime`, `msg: "request
completed"`: https://app.unpkg.com/pino-http@2.6.2/files/test.js), `err.message` on the failed
request as pino's error serializer writes it. No built-in format reads it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conflictradar.ingest.errors import ConfigError
from conflictradar.ingest.formats import UnknownFormatError, get_format
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.kit import query_db

MAPPED = Path(__file__).resolve().parents[1] / "sample_logs" / "mapped"
CONFIG = MAPPED / "conflictradar.toml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conflictradar", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "CONFLICTRADAR_DB": ""},
    )  # fmt: skip


def test_a_mapped_json_log_is_ingested_with_format_name(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    proc = _run("ingest", str(MAPPED), "--config", str(CONFIG), "--format", "pino", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    got = query_db(
        db,
        "SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%g'), host, client_ip, user_agent, method, path,"
        " query, status, duration_ms, request_id, message, format FROM requests ORDER BY line",
    )
    assert got == [
        ("2025-09-10T08:00:01.120", "orders.internal:3000", "10.4.0.17", "okhttp/4.12.0", "GET",
         "/carts/31", None, 200, 4.0, "req-1", None, "pino"),
        ("2025-09-10T08:00:02.341", "orders.internal:3000", "10.4.0.17", "okhttp/4.12.0", "POST",
         "/carts/31/checkout", None, 201, 48.0, "req-2", None, "pino"),
        ("2025-09-10T08:00:09.876", "orders.internal:3000", "10.4.0.22", "Mozilla/5.0", "PUT",
         "/carts/31/items/2", "expand=product", 409, 12.0, "req-3",
         "cart 31 was modified by another request (version 7, expected 6)", "pino"),
    ]  # fmt: skip
    # The server's start-up line is skipped, and the 409 explained by its error text.
    assert query_db(db, "SELECT cause FROM conflicts") == [("version_mismatch",)]
    assert "3 parsed, 0 rejected, 1 skipped" in proc.stdout + proc.stderr


def test_a_resumed_file_keeps_its_mapping(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    lines = (MAPPED / "orders-pino.jsonl").read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]))
    db = tmp_path / "r.duckdb"
    settings = load_settings(config=CONFIG, db=db, env={})
    with Store.open(db) as store:
        Ingester(store, settings, forced="pino").ingest(expand_paths([str(log)]))
    log.write_text("".join(lines))
    with Store.open(db) as store:  # no --format now: the file's stored format is used
        report = Ingester(store, settings).ingest(expand_paths([str(log)]))
    assert report.files[0].format == "pino"
    assert query_db(db, "SELECT count(*), max(status) FROM requests") == [(3, 409)]
    # A config that no longer defines the mapping: that file is an error of its own, not a crash.
    log.write_text("".join(lines) + lines[1])
    with Store.open(db) as store:
        gone = Ingester(store, load_settings(db=db, env={})).ingest(expand_paths([str(log)]))
    (file,) = gone.files
    assert file.status == "error"
    assert "was read as 'pino', which no longer resolves" in file.message


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('[formats.app]\nts = "t"\nstatsu = "s"\n', ["unknown key formats.app.statsu"]),
        ('[formats.app]\nts = "t"\n', ["formats.app has no status"]),
        ('[formats.app]\nstatus = "s"\n', ["formats.app has no ts"]),
        ('[formats.app]\nts = "t"\nstatus = 200\n', ["formats.app.status = 200", "key path"]),
        ('[formats.app]\nts = "t"\nstatus = "res..code"\n', ["formats.app.status"]),
        ('[formats.app]\nts = "t"\nstatus = "s"\nts_format = "seconds"\n',
         ["formats.app.ts_format = 'seconds'", "epoch_ms"]),
        ('[formats.app]\nts = "t"\nstatus = "s"\nduration_unit = "min"\n',
         ["formats.app.duration_unit"]),
        ('[formats.combined]\nts = "t"\nstatus = "s"\n', ["combined is a built-in format"]),
        ('[formats]\napp = "x"\n', ["formats.app must be a table"]),
    ],
)  # fmt: skip
def test_a_wrong_mapping_is_one_sentence_naming_the_key(
    table: str, words: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "conflictradar.toml"
    config.write_text(table)
    with pytest.raises(ConfigError) as err:
        load_settings(config=config, env={})
    message = str(err.value)
    assert all(w in message for w in words), message
    assert "\n" not in message
    # The command line says the same, once, without a traceback.
    proc = _run("ingest", str(MAPPED), "--config", str(config), "--db", str(tmp_path / "x.db"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"conflictradar: error: {message}"


def test_time_encodings_and_units() -> None:
    settings = load_settings(config=None, env={})
    assert settings.formats == ()
    from conflictradar.ingest.mappings import load_mappings

    (mapping,) = load_mappings(
        {"app": {"ts": "at", "ts_format": "%d.%m.%Y %H:%M:%S%z", "status": "code",
                 "duration_ms": "took", "duration_unit": "s", "method": "http.method"}}
    )  # fmt: skip
    import polars as pl

    from conflictradar.ingest.formats import ParserState

    lines = ['{"at":"10.09.2026 00:00:01+0200","code":"409","took":0.25,"http":{"method":"put"}}']
    row = get_format("app", [mapping]).parse(pl.Series(lines), ParserState()).row(0, named=True)
    assert (str(row["ts"]), row["status"], row["duration_ms"], row["method"]) == (
        "2026-09-09 22:00:01+00:00", 409, 250.0, "PUT",
    )  # fmt: skip


def test_an_unknown_format_name_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match=r"a \[formats\.NAME\] table"):
        get_format("pino")
    proc = _run("ingest", str(MAPPED), "--format", "pino", "--db", str(tmp_path / "u.db"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("conflictradar: error: unknown format 'pino'")
    assert "Traceback" not in proc.stderr


def test_config_check_prints_the_mapping_back(tmp_path: Path) -> None:
    import tomllib

    proc = _run("config", "check", str(CONFIG))
    assert proc.returncode == 0, proc.stderr
    printed = tomllib.loads(proc.stdout)["formats"]["pino"]
    assert printed["status"] == "res.statusCode" and printed["ts_format"] == "epoch_ms"
    # What it prints is a config that loads to the same mapping.
    again = tmp_path / "again.toml"
    again.write_text(proc.stdout)
    assert (
        load_settings(config=again, env={}).formats == load_settings(config=CONFIG, env={}).formats
    )
