"""Composition root: parse arguments, resolve settings once, wire the packages, report errors.

Data goes to stdout; progress and logs to stderr. Exit 0 ok, 1 error (one sentence), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import ConflictRadarError, UsageError
from ingest.settings import Settings, load_settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"conflictradar: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", help="database file (default: $CONFLICTRADAR_DB or ./conflictradar.duckdb)"
    )
    p.add_argument("--config", help="settings file (default: ./conflictradar.toml if present)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conflictradar",
        description="Find, explain and alert on HTTP 409 Conflict responses in access logs.",
    )
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

    p = sub.add_parser("ingest", help="ingest log files, globs or folders (.gz too), once")
    _common(p)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", dest="log_format", metavar="NAME",
                   help="log format (default: detected per file); e.g. combined, apigw, "
                        "nginx:'<log_format string>', apache:'<LogFormat string>'")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")

    p = sub.add_parser("watch", help="follow log files, folders or globs until stopped")
    _common(p)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", dest="log_format", metavar="NAME",
                   help="log format (default: detected per file)")  # fmt: skip
    p.add_argument("--no-alerts", action="store_true", help="do not evaluate alert rules")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what watch does (files, rotations, batches, lag) to stderr as JSON")  # fmt: skip

    p = sub.add_parser("dashboard", help="start the dashboard (Streamlit) on 127.0.0.1:8501")
    _common(p)
    p.add_argument("--host", help="address to bind (default: 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, help="port (default: 8501)")

    p = sub.add_parser("alerts", help="test channels, check rules now, or backtest history")
    alerts = p.add_subparsers(dest="alerts_command", required=True, parser_class=_Parser)
    a = alerts.add_parser("test", help="send a clearly marked test notification to every channel")
    _common(a)
    a = alerts.add_parser("check", help="evaluate the rules once, now, and deliver what fires")
    _common(a)
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

    p = sub.add_parser("sql", help="run a read-only SQL query")
    _common(p)
    p.add_argument("query", metavar="QUERY", help="the SELECT to run, or - to read it from stdin")
    p.add_argument("--format", dest="out_format", choices=["table", "csv", "json"],
                   help="output format (default: table on a terminal, csv otherwise)")  # fmt: skip
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config=args.config, db=args.db)


def cmd_ingest(settings: Settings, paths: list[str], log_format: str | None, quiet: bool) -> int:
    from ingest.pipeline import Ingester, expand_paths
    from ingest.render import ingest_progress, print_ingest_report
    from ingest.store import Store

    files = expand_paths(paths)
    with Store.open(settings.db, wait_s=5.0) as store, ingest_progress(files, quiet) as progress:
        report = Ingester(store, settings, forced=log_format, progress=progress).ingest(files)
    for f in report.files:
        if f.status in ("unrecognized", "error"):
            print(f"conflictradar: {f.message}", file=sys.stderr)
    if not quiet:
        print_ingest_report(report, sys.stdout)
    failed = [f for f in report.files if f.status == "error"]
    return 1 if failed and len(failed) == len(report.files) else 0


def cmd_sql(settings: Settings, query: str, out_format: str | None) -> int:
    from ingest.reader import open_reader
    from ingest.render import print_table

    text = sys.stdin.read() if query == "-" else query
    result = open_reader(settings).user_query(text)
    fmt = out_format or ("table" if sys.stdout.isatty() else "csv")
    print_table(result.table, fmt, sys.stdout)
    if result.truncated:
        print(f"conflictradar: showing the first {settings.sql.max_rows} rows "
              "(raise sql.max_rows to see more)", file=sys.stderr)  # fmt: skip
    return 0


def cmd_watch(settings: Settings, paths: list[str], log_format: str | None, alerts: bool,
              verbose: int) -> int:  # fmt: skip
    from conflictradar.logs import setup_logging
    from conflictradar.watch import run_watch

    setup_logging(verbose)
    return run_watch(settings, paths, log_format, alerts)


def cmd_dashboard(settings: Settings, host: str | None, port: int | None) -> int:
    from dashboard.server import run_dashboard

    return run_dashboard(settings, host or settings.dashboard.host, port or settings.dashboard.port)


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from alerts.commands import parse_step, parse_when, run_backtest, run_check, run_test
    from ingest.reader import open_reader
    from ingest.store import Store

    now = datetime.now(UTC)
    if args.alerts_command == "backtest":
        since = parse_when(args.since, now, "--since")
        until = parse_when(args.until, now, "--until")
        return run_backtest(settings, open_reader(settings), since, until, parse_step(args.step),
                            args.html, sys.stdout)  # fmt: skip
    with Store.open(settings.db, wait_s=5.0) as store:
        if args.alerts_command == "test":
            return run_test(settings, store, sys.stdout)
        return run_check(settings, store, now, sys.stdout)


def cmd_demo(settings: Settings, duration: float | None) -> int:
    from conflictradar.demo import run_demo

    if duration is None:
        duration = 0.0 if sys.stdin.isatty() else 60.0
    return run_demo(settings, sys.stdout, duration)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "ingest":
            return cmd_ingest(_settings(args), args.paths, args.log_format, args.quiet)
        if args.command == "watch":
            return cmd_watch(_settings(args), args.paths, args.log_format, not args.no_alerts,
                             args.verbose)  # fmt: skip
        if args.command == "dashboard":
            return cmd_dashboard(_settings(args), args.host, args.port)
        if args.command == "alerts":
            return cmd_alerts(_settings(args), args)
        if args.command == "sql":
            return cmd_sql(_settings(args), args.query, args.out_format)
        if args.command == "demo":
            return cmd_demo(_settings(args), args.duration)
        raise UsageError(f"unknown command {args.command}")
    except ConflictRadarError as exc:
        print(f"conflictradar: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("conflictradar: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
