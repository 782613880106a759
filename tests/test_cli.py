"""The command line as scripts use it: --version, global options anywhere, exit codes, stdin,
`sql` output formats and row caps, `config check`, and examples in every --help."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import conflictradar
from conflictradar.arguments import build_parser

LINE = (
    '10.0.0.{ip} - - [02/Jun/2025:10:00:{s:02d} +0000] "{m} /orders/{n} HTTP/1.1" {st} 12 "-" "t"\n'
)


def log_text(count: int, status: int = 409, method: str = "POST") -> str:
    return "".join(
        LINE.format(ip=i % 250, s=i % 60, m=method, n=i, st=status) for i in range(count)
    )


def cli(*args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONFLICTRADAR_")}
    return subprocess.run(
        [sys.executable, "-m", "conflictradar", *args],
        capture_output=True, text=True, timeout=120, env={**base, **(env or {})},
        input=stdin.decode() if isinstance(stdin, bytes) else stdin, cwd=cwd,
    )  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    log = tmp_path / "access.log"
    log.write_text(log_text(25))
    path = tmp_path / "cr.duckdb"
    assert cli("ingest", str(log), "--db", str(path), "-q").returncode == 0
    return path


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"conflictradar {conflictradar.__version__}\n"
    assert conflictradar.__version__ == "0.1.0"


def test_global_options_before_or_after_the_command(db: Path) -> None:
    query = "SELECT count(*) AS n FROM conflicts"
    before = cli("--db", str(db), "sql", query)
    after = cli("sql", query, "--db", str(db))
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout == "n\n25\n"
    # A nested command too, and -v in either place.
    assert cli("-v", "config", "check", "--db", str(db)).returncode == 0
    assert cli("--db", str(db), "config", "check", "-v").returncode == 0


def test_every_help_has_examples() -> None:
    parser = build_parser()
    helps = [parser.format_help()]
    actions = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    for action in actions:
        assert isinstance(action.choices, dict)
        for sub in action.choices.values():
            helps.append(sub.format_help())
            for inner in sub._actions:
                if isinstance(inner.choices, dict):
                    helps.extend(p.format_help() for p in inner.choices.values())
    assert len(helps) >= 11  # main, demo, ingest, watch, dashboard, alerts x3 (+group), sql, config
    for text in helps:
        assert "examples:\n  conflictradar" in text or "examples:\n  SLACK" in text, text[:200]
    assert "3    `alerts check`: at least one alert is firing" in parser.format_help()


def test_ingest_exit_codes(tmp_path: Path) -> None:
    d = tmp_path / "cr.duckdb"
    junk = tmp_path / "notes.txt"
    junk.write_text("hello world\n" * 30)
    proc = cli("ingest", str(junk), "--db", str(d))
    assert proc.returncode == 1
    assert proc.stderr.endswith(f"conflictradar: error: {junk} yielded no request (see above)\n")
    # A format forced on lines that are not in it: every line is rejected.
    proc = cli("ingest", str(junk), "--db", str(d), "--format", "combined", "-q")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"conflictradar: error: {junk} yielded no request: all 30 lines were rejected; see why"
        ' with `conflictradar sql "SELECT reason, count(*) FROM rejects GROUP BY 1"`\n'
    )
    good = tmp_path / "access.log"
    good.write_text(log_text(10))
    assert cli("ingest", str(good), "--db", str(d), "-q").returncode == 0
    # Nothing new is not nothing recognised: a re-run exits 0 (cron runs the same command).
    assert cli("ingest", str(good), "--db", str(d), "-q").returncode == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("ingest", str(empty), str(good), "--db", str(d), "-q")
    assert proc.returncode == 1 and f"{empty} holds no log files" in proc.stderr


def test_ingest_reads_standard_input_once(tmp_path: Path) -> None:
    d = tmp_path / "cr.duckdb"
    text = log_text(40)
    proc = cli("ingest", "-", "--db", str(d), stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[:5] == ["-", "ok", "combined", "40", "40"]
    again = cli("ingest", "-", "--db", str(d), "-q", stdin=text)
    assert again.returncode == 0, again.stderr
    assert cli("sql", "SELECT count(*) AS n FROM requests", "--db", str(d)).stdout == "n\n40\n"
    assert not (tmp_path / "cr.duckdb.stdin").exists()  # the spool is gone once stored
    bad = cli("ingest", "-", "--db", str(d), stdin="not a log\n" * 5)
    assert bad.returncode == 1
    assert "standard input: format not recognised" in bad.stderr
    assert "error: standard input yielded no request" in bad.stderr


def test_watch_reads_standard_input_until_it_ends(tmp_path: Path) -> None:
    d = tmp_path / "cr.duckdb"
    proc = cli("watch", "-", "--db", str(d), "--no-alerts", stdin=log_text(30) + log_text(5)[:-1])
    assert proc.returncode == 0, proc.stderr
    out = cli(
        "sql", "SELECT count(*) AS n, count(DISTINCT file) AS f FROM requests", "--db", str(d)
    )
    assert out.stdout == "n,f\n35,1\n"  # the unterminated last line is stored too
    assert list((tmp_path / "cr.duckdb.stdin").iterdir()) == []


def test_sql_json_is_iso_8601_and_ndjson_one_object_per_line(db: Path) -> None:
    query = "SELECT ts, line FROM conflicts ORDER BY line LIMIT 2"
    js = cli("sql", query, "--db", str(db), "--format", "json")
    assert json.loads(js.stdout) == [
        {"ts": "2025-06-02T10:00:00Z", "line": 1},
        {"ts": "2025-06-02T10:00:01Z", "line": 2},
    ]
    nd = cli("sql", query, "--db", str(db), "--format", "ndjson")
    assert nd.stdout == (
        '{"ts": "2025-06-02T10:00:00Z", "line": 1}\n{"ts": "2025-06-02T10:00:01Z", "line": 2}\n'
    )


def test_row_cap_applies_to_the_screen_not_to_exports(db: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sql]\nmax_rows = 3\n")
    query = "SELECT line, ts FROM conflicts ORDER BY line"
    piped = cli("sql", query, "--db", str(db), "--config", str(cfg))
    assert len(piped.stdout.splitlines()) == 26 and piped.stderr == ""
    out = tmp_path / "all.parquet"
    proc = cli("sql", query, "--db", str(db), "--config", str(cfg), "-o", str(out))
    assert proc.returncode == 0
    assert proc.stderr == f"conflictradar: wrote 25 rows to {out} (parquet)\n"
    table = pq.read_table(out)
    assert table.num_rows == 25 and table.column_names == ["line", "ts"]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    nd = tmp_path / "all.ndjson"
    assert cli("sql", query, "--db", str(db), "--config", str(cfg), "-o", str(nd)).returncode == 0
    assert len(nd.read_text().splitlines()) == 25
    # On a terminal: three rows and a note.
    primary, secondary = pty.openpty()
    try:
        term = subprocess.run(
            [sys.executable, "-m", "conflictradar", "sql", query, "--db", str(db),
             "--config", str(cfg)],
            stdout=secondary, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert term.returncode == 0
    assert b"3 rows" in shown
    assert "showing the first 3 rows" in term.stderr
    # Parquet on a pipe is fine (never on a terminal).
    piped_parquet = subprocess.run(
        [sys.executable, "-m", "conflictradar", "sql", query, "--db", str(db), "--format",
         "parquet"], capture_output=True, timeout=60,
    )  # fmt: skip
    assert piped_parquet.returncode == 0 and piped_parquet.stdout.startswith(b"PAR1")


EXAMPLE = """
[classify]
race_window = "5s"

[alerts.channels.ops-slack]
type = "slack"
url_env = "SLACK_WEBHOOK_URL"

[alerts.channels.hook]
type = "webhook"
url_env = "HOOK_URL"
secret_env = "HOOK_KEY"

[[alerts.rules]]
name = "409 spike per endpoint"
scope = "endpoint"
detector = "baseline"
window = "5m"
min_count = 20
for = "1m"
channels = ["ops-slack"]
"""


def test_config_check_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "conflictradar.toml"
    cfg.write_text(EXAMPLE)
    secret = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"
    env = {"SLACK_WEBHOOK_URL": secret, "HOOK_URL": "http://127.0.0.1:9/h",
           "CONFLICTRADAR_SQL_MAX_ROWS": "77"}  # fmt: skip
    proc = cli("config", "check", str(cfg), env=env)
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr and "XXXXSECRET" not in proc.stdout
    assert 'url_env = "SLACK_WEBHOOK_URL"  # set: <secret>' in proc.stdout
    assert 'secret_env = "HOOK_KEY"  # NOT SET here' in proc.stdout
    assert "HOOK_KEY (alerts.channels.hook)" in proc.stderr
    effective = tomllib.loads(proc.stdout)
    assert effective["sql"]["max_rows"] == 77  # the environment wins over defaults
    assert effective["classify"]["race_window"] == "5s"
    assert effective["classify"]["retry_window"] == "30s"
    assert effective["alerts"]["rules"][0]["window"] == "5m"
    # What it prints is itself a valid config that resolves to the same settings.
    again = tmp_path / "effective.toml"
    again.write_text(proc.stdout)
    second = cli("config", "check", str(again), env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("\n", 1)[1] == proc.stdout.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[classify]\nrace_window = "5 parsecs"\n',
         'classify.race_window = \'5 parsecs\' is not a duration; use e.g. "500ms", "30s", "5m", "1h"'),
        ("[classify\n", "is not valid TOML: Expected ']' at the end of a table declaration"),
        ('[alerts.channels.x]\ntype = "pager"\nurl_env = "U"\n',
         "alerts.channels.x.type = 'pager' is not allowed; allowed values are alertmanager, slack, webhook"),
        ("[dashbord]\nport = 1\n", "unknown section [dashbord]"),
    ],
)  # fmt: skip
def test_config_check_on_a_broken_file_is_one_sentence(
    tmp_path: Path, text: str, message: str
) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text(text)
    proc = cli("config", "check", str(cfg))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("conflictradar: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_config_check_without_a_file_shows_the_defaults(tmp_path: Path) -> None:
    proc = cli("config", "check", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# conflictradar config check: no config file: defaults\n")
    assert tomllib.loads(proc.stdout)["alerts"]["rules"][0]["name"] == "409 spike"
    missing = cli("config", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1
    assert (
        missing.stderr
        == f"conflictradar: error: config file {tmp_path / 'nope.toml'} does not exist\n"
    )
