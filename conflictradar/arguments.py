"""Command line -> arguments: the parser of every command, its options and their help.

Usage errors exit 2 with one line, and every parser shows its examples (`conflictradar.usage`)
below its options. `conflictradar.cli` parses with it and runs the command named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from conflictradar import __version__
from conflictradar.output import FORMATS
from conflictradar.usage import EXAMPLES, GLOBAL


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with one line; every parser shows its examples below the options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        name = self.prog.removeprefix("conflictradar").strip()
        if self.epilog is None and name in EXAMPLES:
            self.epilog = EXAMPLES[name]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"conflictradar: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _common(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    """The global options. On the main parser they have defaults; on a command they are
    SUPPRESSed unless given, so `--db X` works before and after the command alike."""
    p.add_argument(
        "--db", default=default,
        help="database file (default: $CONFLICTRADAR_DB or ./conflictradar.duckdb)",
    )  # fmt: skip
    p.add_argument(
        "--config", default=default,
        help="settings file (default: $CONFLICTRADAR_CONFIG, else ./conflictradar.toml if present)",
    )  # fmt: skip
    p.add_argument(
        "-v", "--verbose", action="count", default=0 if default is None else default,
        help="log what long-running commands do to stderr as JSON (-vv: debugging detail)",
    )  # fmt: skip


def _lake_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", type=Path, metavar="DIR",
                   help="write a hive-partitioned Parquet lake in DIR on a Dask cluster")  # fmt: skip
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="with --lake: a Dask scheduler (tcp://HOST:8786) or local:N workers"
                        " (default: local:<cores>)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conflictradar",
        description="Find, explain and alert on HTTP 409 Conflict responses in access logs.",
        epilog=GLOBAL,
    )
    parser.add_argument("--version", action="version", version=f"conflictradar {__version__}")
    _common(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "demo", help="live sample traffic, watched, explained, on the dashboard (prints its URL)"
    )
    _common(p)
    p.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this long (default: until Ctrl-C on a terminal, 60 s otherwise)",
    )
    p.add_argument(
        "--spike-every",
        type=float,
        default=150.0,
        metavar="SECONDS",
        help="inject a 409 spike this often, lasting a third of it (default: 150)",
    )
    p.add_argument(
        "--backfill",
        type=float,
        default=2.0,
        metavar="HOURS",
        help="hours of past traffic written first, at the live rate (default: 2)",
    )

    p = sub.add_parser("ingest", help="ingest log files, globs or folders (.gz too), once")
    _common(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or glob; - reads stdin")
    p.add_argument("--format", dest="log_format", metavar="NAME",
                   help="log format (default: detected per file); e.g. combined, apigw, "
                        "nginx:'<log_format string>', apache:'<LogFormat string>'")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    _lake_options(p)

    p = sub.add_parser("watch", help="follow log files, folders or globs until stopped")
    _common(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or glob; - reads stdin")
    p.add_argument("--format", dest="log_format", metavar="NAME",
                   help="log format (default: detected per file)")  # fmt: skip
    p.add_argument("--no-alerts", action="store_true", help="do not evaluate alert rules")
    p.add_argument("--metrics", metavar="ADDR",
                   help="serve Prometheus /metrics and /healthz on ADDR: PORT or HOST:PORT "
                        "(default: off; a bare PORT binds 127.0.0.1)")  # fmt: skip
    p.add_argument("--lake", type=Path, metavar="DIR",
                   help="also append each complete hour to the Parquet lake DIR (docs/lake.md)")  # fmt: skip
    p.add_argument("--lake-host", metavar="NAME",
                   help="with --lake: this host's name in the lake (default: the hostname)")  # fmt: skip
    p.add_argument("--lake-lateness", type=float, default=300.0, metavar="SECONDS",
                   help="with --lake: seal an hour once lines are this far past its end"
                        " (default: 300)")  # fmt: skip

    p = sub.add_parser("dashboard", help="start the dashboard (Streamlit) on 127.0.0.1:8501")
    _common(p)
    p.add_argument("--host", help="address to bind (default: 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, help="port (default: 8501)")
    p.add_argument("--lake", type=Path, metavar="DIR", help="show a Parquet lake instead of --db")
    p.add_argument("--expose", action="store_true",
                   help="allow a non-loopback --host (unauthenticated; the SQL page is switched "
                        "off): prefer 127.0.0.1 behind an authenticating reverse proxy")  # fmt: skip

    p = sub.add_parser("alerts", help="test channels, check rules now, or backtest history")
    alerts = p.add_subparsers(dest="alerts_command", required=True, parser_class=_Parser)
    a = alerts.add_parser("test", help="send a clearly marked test notification to every channel")
    _common(a)
    a.add_argument("--wait", default="30s",
                   help="keep retrying a failing delivery this long (default: 30s)")  # fmt: skip
    a = alerts.add_parser("check", help="evaluate the rules once, now, and deliver what fires")
    _common(a)
    a.add_argument("--lake", type=Path, metavar="DIR",
                   help="count from a Parquet lake (the alert state stays in --db)")  # fmt: skip
    a.add_argument("--wait", default="30s",
                   help="keep retrying a failing delivery this long (default: 30s)")  # fmt: skip
    a = alerts.add_parser(
        "backtest", help="replay history: which alerts would have fired, when, why"
    )
    _common(a)
    a.add_argument(
        "--since", required=True, help="start: ISO time (2025-06-02T08:00Z) or 2h, 7d ago"
    )
    a.add_argument("--until", default="now", help="end (default: now)")
    a.add_argument("--step", default="1m", help="evaluation step (default: 1m)")
    a.add_argument(
        "--html", type=Path, help="also write an HTML plot of the series with the alerts"
    )
    a.add_argument("--lake", type=Path, metavar="DIR", help="replay a Parquet lake's history")
    a.add_argument(
        "--format", dest="output", choices=("text", "json"), default="text",
        help="text: a timeline (default); json: one object per alert that would have fired",
    )  # fmt: skip

    p = sub.add_parser("sql", help="run a read-only SQL query")
    _common(p)
    p.add_argument("query", metavar="QUERY", help="the SELECT to run, or - to read it from stdin")
    p.add_argument("--lake", type=Path, metavar="DIR", help="query a Parquet lake instead of --db")
    p.add_argument("--format", dest="out_format", choices=FORMATS,
                   help="output format (default: table on a terminal, csv otherwise; "
                        "parquet when --output ends in .parquet)")  # fmt: skip
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write the result to FILE instead of stdout (every row)")  # fmt: skip

    p = sub.add_parser("config", help="check a settings file")
    config = p.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    c = config.add_parser(
        "check", help="validate a settings file and print the effective settings, secrets masked"
    )
    _common(c)
    c.add_argument("file", nargs="?", type=Path, metavar="FILE",
                   help="the file to check (default: --config, $CONFLICTRADAR_CONFIG or "
                        "./conflictradar.toml)")  # fmt: skip
    return parser
