"""The commands: one function per CLI command, wiring the resolved settings to the packages.

`conflictradar.cli` parses the arguments, resolves the settings and calls one of these with
them. Each imports the packages it runs only when called, writes data to stdout and progress,
warnings and errors to stderr, and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from conflictradar.ingest.errors import UsageError
from conflictradar.ingest.escape import for_screen
from conflictradar.ingest.settings import Settings

if TYPE_CHECKING:
    from conflictradar.ingest.reports import FileReport


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
