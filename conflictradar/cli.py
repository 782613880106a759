"""Composition root: parse arguments, resolve settings once, wire the packages, report errors.

Data goes to stdout; progress and logs to stderr. Exit 0 ok, 1 error (one sentence), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conflictradar import __version__
from conflictradar.ingest.errors import ConflictRadarError, UsageError
from conflictradar.ingest.escape import for_screen, terminal
from conflictradar.ingest.settings import Settings, load_settings
from conflictradar.output import FORMATS
from conflictradar.usage import EXAMPLES, GLOBAL

if TYPE_CHECKING:
    from conflictradar.ingest.reports import FileReport


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


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config=args.config, db=args.db)


def _by_argument(paths: list[str]) -> tuple[list[Path], list[tuple[str, list[Path]]]]:
    """The files to ingest, and which of them each argument named (for its exit code)."""
    from conflictradar.ingest.paths import expand_paths

    groups = [(arg, expand_paths([arg])) for arg in paths]
    files = list(dict.fromkeys(f for _, group in groups for f in group))
    return files, groups


def _nothing_from(arg: str, reports: list[FileReport]) -> str | None:
    """Why `arg` yielded no request, or None when it did (or had nothing new: a re-run)."""
    arg = "standard input" if arg == "-" else arg
    if not reports:
        return f"{arg} holds no log files"
    read = [r for r in reports if r.status != "unchanged"]
    if not read or sum(r.parsed for r in read) > 0:
        return None
    if any(r.status in ("unrecognized", "error") for r in read):
        return f"{arg} yielded no request (see above)"
    if sum(r.bad_times for r in read) > 0:
        return None  # its requests are in `rejects` with the reason: see _bad_times_warning
    rejected, skipped = sum(r.rejected for r in read), sum(r.skipped for r in read)
    if rejected:
        return (
            f"{arg} yielded no request: all {rejected:,} lines were rejected; see why with"
            ' `conflictradar sql "SELECT reason, count(*) FROM rejects GROUP BY 1"`'
        )
    return f"{arg} yielded no request: its {skipped:,} lines are not access-log lines"


def _bad_times_warning(arg: str, reports: list[FileReport]) -> str | None:
    """A warning when `arg` yielded only requests whose time the store refuses."""
    read = [r for r in reports if r.status != "unchanged"]
    bad = sum(r.bad_times for r in read)
    if not bad or sum(r.parsed for r in read) > 0:
        return None
    arg = "standard input" if arg == "-" else arg
    return (
        f"{arg} stored no request: its {bad:,} requests have impossible times (before 1970 or"
        " a day in the future) and are in `rejects`"
    )


def cmd_ingest(settings: Settings, paths: list[str], log_format: str | None, quiet: bool,
               lake: Path | None = None, cluster: str | None = None) -> int:  # fmt: skip
    from conflictradar.ingest.pipeline import Ingester
    from conflictradar.ingest.render import ingest_progress, print_ingest_report
    from conflictradar.ingest.store import Store
    from conflictradar.spool import STDIN, spool_stdin

    if lake is not None or cluster is not None:
        from conflictradar.ingest.lake.cluster import run_lake_ingest

        return run_lake_ingest(settings, paths, lake, cluster, log_format, quiet)

    spooled = spool_stdin(settings.db, sys.stdin.buffer) if STDIN in paths else None
    files, groups = _by_argument([str(spooled) if p == STDIN and spooled else p for p in paths])
    with Store.open(settings.db, wait_s=5.0) as store, ingest_progress(files, quiet) as progress:
        report = Ingester(store, settings, forced=log_format, progress=progress).ingest(files)
    if spooled is not None:
        spooled.unlink(missing_ok=True)  # its rows are stored; a re-run of the same bytes adds none
        with contextlib.suppress(OSError):
            spooled.parent.rmdir()  # when empty
        for f in report.files:
            if f.path == str(spooled):
                f.path, f.message = STDIN, f.message.replace(str(spooled), "standard input")
    for f in report.files:
        if f.status in ("unrecognized", "error"):
            print(f"conflictradar: {f.message}", file=sys.stderr)
    if not quiet:
        print_ingest_report(report, sys.stdout)
    shown = {str(spooled): STDIN} if spooled is not None else {}
    by_path = {f.path: f for f in report.files}
    code = 0
    for arg, group in groups:
        names = [shown.get(str(f), str(f)) for f in group]
        reports = [by_path[n] for n in names if n in by_path]
        reason = _nothing_from(shown.get(arg, arg), reports)
        if reason is None and (warning := _bad_times_warning(shown.get(arg, arg), reports)):
            print(f"conflictradar: warning: {warning}", file=sys.stderr)
        if reason is not None:
            print(f"conflictradar: error: {reason}", file=sys.stderr)
            code = 1
    return code


def cmd_sql(settings: Settings, query: str, out_format: str | None, output: Path | None,
            lake: Path | None = None) -> int:  # fmt: skip
    from conflictradar.ingest.reader import open_reader
    from conflictradar.output import choose_format, write_result

    text = sys.stdin.read() if query == "-" else query
    to_screen = output is None and sys.stdout.isatty()
    fmt = choose_format(out_format, output, sys.stdout.isatty())
    # The row cap protects a terminal; files and pipes (exports) get every row.
    if lake is not None:
        from conflictradar.ingest.lake.reader import LakeReader

        result = LakeReader(lake, settings.sql).user_query(text, capped=to_screen)
    else:
        result = open_reader(settings).user_query(text, capped=to_screen)
    if output is None:
        write_result(result.table, fmt, sys.stdout, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        try:
            with output.open("wb") as binary, open(binary.fileno(), "w", encoding="utf-8",
                                                   closefd=False, newline="") as out:  # fmt: skip
                write_result(result.table, fmt, out, binary)
        except OSError as exc:
            raise UsageError(f"cannot write --output {output}: {exc.strerror}") from exc
        print(f"conflictradar: wrote {result.table.num_rows:,} rows to {output} ({fmt})",
              file=sys.stderr)  # fmt: skip
    if result.truncated:
        print(f"conflictradar: showing the first {settings.sql.max_rows} rows (raise sql.max_rows,"
              " or use --output FILE for every row)", file=sys.stderr)  # fmt: skip
    return 0


def cmd_watch(settings: Settings, paths: list[str], log_format: str | None, alerts: bool,
              verbose: int, metrics: str | None, lake: Path | None = None,
              lake_host: str | None = None, lake_lateness: float = 300.0) -> int:  # fmt: skip
    from conflictradar.logs import setup_logging
    from conflictradar.watch import WatchExtra, run_watch

    setup_logging(verbose)
    extras: list[WatchExtra] = []
    if metrics is not None:
        from conflictradar.metrics import MetricsEndpoint, parse_address

        extras.append(MetricsEndpoint(parse_address(metrics), settings))
    if lake is not None:
        from conflictradar.ingest.lake.seal import LakeSealer, default_host

        if lake_lateness < 0:
            raise UsageError("--lake-lateness must be 0 or more seconds")
        extras.append(LakeSealer(lake, settings, lake_host or default_host(), lake_lateness))
    if "-" in paths:
        from conflictradar.spool import StdinFollower

        follower = StdinFollower(settings.db, sys.stdin.buffer)
        extras.append(follower)
        paths = [str(follower.folder) if p == "-" else p for p in paths]
    return run_watch(settings, paths, log_format, alerts, extras)


def cmd_config(args: argparse.Namespace) -> int:
    from conflictradar.configcheck import check_config

    return check_config(args.file or args.config, args.db, sys.stdout)


def cmd_dashboard(settings: Settings, host: str | None, port: int | None,
                  lake: Path | None = None, expose: bool = False) -> int:  # fmt: skip
    from conflictradar.dashboard.server import run_dashboard

    if lake is not None:  # the app reads the lake (dashboard.data.reader)
        os.environ["CONFLICTRADAR_LAKE"] = str(lake.resolve())

    return run_dashboard(settings, host or settings.dashboard.host,
                         port or settings.dashboard.port, expose=expose)  # fmt: skip


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from conflictradar.alerts.actions import run_in_watcher
    from conflictradar.alerts.commands import (
        parse_step,
        parse_when,
        run_backtest,
        run_check,
        run_test,
    )
    from conflictradar.ingest.reader import open_reader
    from conflictradar.ingest.store import Store

    now = datetime.now(UTC)
    if args.alerts_command == "backtest":
        since = parse_when(args.since, now, "--since")
        until = parse_when(args.until, now, "--until")
        reader = open_reader(settings)
        if args.lake is not None:
            from conflictradar.ingest.lake.reader import LakeReader

            reader = LakeReader(args.lake, settings.sql)
        return run_backtest(settings, reader, since, until, parse_step(args.step), args.html,
                            for_screen(sys.stdout), output=args.output)  # fmt: skip
    wait_s = parse_step(args.wait, "--wait").total_seconds()
    out = for_screen(sys.stdout)
    reads = None
    if args.alerts_command == "check" and args.lake is not None:
        from conflictradar.alerts.backtest import lookback
        from conflictradar.alerts.config import load_alert_config
        from conflictradar.ingest.lake.checks import lake_reads

        rules = load_alert_config(settings, require_secrets=False).rules
        span = max((lookback(r) for r in rules), default=timedelta(hours=1))
        reads = lake_reads(args.lake, settings.sql, span)
    else:
        # While `watch` runs it owns the file: it does the test or check itself (alerts.actions).
        # (--lake keeps its alert state in --db, which such a watcher holds: opening it below
        # then says the database is locked.)
        code = run_in_watcher(settings, args.alerts_command, out, wait_s)
        if code is not None:
            return code
    with Store.open(settings.db, wait_s=5.0) as store:
        if args.alerts_command == "test":
            return run_test(settings, store, out, wait_s=wait_s)
        return run_check(settings, store, now, out, wait_s=wait_s, reads=reads)


def cmd_demo(
    settings: Settings, duration: float | None, spike_every: float = 150.0, backfill: float = 2.0
) -> int:
    from conflictradar.demo import run_demo

    if duration is None:
        duration = 0.0 if sys.stdin.isatty() else 60.0
    if spike_every < 3 or not 0 < backfill <= 48:
        raise UsageError("--spike-every must be at least 3 s and --backfill 0-48 hours")
    return run_demo(settings, sys.stdout, duration, spike_every_s=spike_every,
                    backfill_hours=backfill)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "ingest":
            return cmd_ingest(_settings(args), args.paths, args.log_format, args.quiet,
                              args.lake, args.cluster)  # fmt: skip
        if args.command == "watch":
            return cmd_watch(_settings(args), args.paths, args.log_format, not args.no_alerts,
                             args.verbose, args.metrics, args.lake, args.lake_host,
                             args.lake_lateness)  # fmt: skip
        if args.command == "dashboard":
            return cmd_dashboard(_settings(args), args.host, args.port, args.lake, args.expose)
        if args.command == "alerts":
            return cmd_alerts(_settings(args), args)
        if args.command == "sql":
            return cmd_sql(_settings(args), args.query, args.out_format, args.output, args.lake)
        if args.command == "demo":
            return cmd_demo(_settings(args), args.duration, args.spike_every, args.backfill)
        if args.command == "config":
            return cmd_config(args)
        raise UsageError(f"unknown command {args.command}")
    except ConflictRadarError as exc:
        print(f"conflictradar: error: {terminal(str(exc))}", file=sys.stderr)
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
