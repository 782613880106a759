"""Composition root: parse arguments, resolve settings once, wire the packages, report errors.

Data goes to stdout; progress and logs to stderr. Exit 0 ok, 1 error (one sentence), 2 usage.
The parser is in `conflictradar.arguments`, the commands in `conflictradar.commands`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from conflictradar.arguments import build_parser
from conflictradar.commands import (
    cmd_alerts,
    cmd_config,
    cmd_dashboard,
    cmd_demo,
    cmd_ingest,
    cmd_sql,
    cmd_watch,
)
from conflictradar.ingest.errors import ConflictRadarError, UsageError
from conflictradar.ingest.escape import terminal
from conflictradar.ingest.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config=args.config, db=args.db)


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
