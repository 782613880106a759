"""CLI <-> watch: `alerts test` and `alerts check` done by the running watcher, over its serve port.

While `conflictradar watch` runs it owns the database (DuckDB lets one process open the file for
writing, and no other process even read it meanwhile), so another process can neither read the
counts directly nor record a delivery, an alert state or an event. The watcher therefore offers
two actions (ingest.serve `offer`, ingest.wire ACTIONS): it sends the test message, or evaluates
the rules now, with its own engine and outbox (so the delivery is recorded and sent once), and
answers with the report lines and the exit code the command prints. The watcher's channels and
environment are the ones used: they are the ones that page. An action takes no SQL.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

import pyarrow as pa

from conflictradar.alerts.commands import check_now, send_test
from conflictradar.ingest.errors import ConflictRadarError, DatabaseError, QueryRefusedError
from conflictradar.ingest.served_reader import WatcherGone, connect_served
from conflictradar.ingest.settings import Settings

if TYPE_CHECKING:
    from conflictradar.alerts.engine import AlertEngine
    from conflictradar.ingest.serve import QueryServer

OPS = {"test": "alert_test", "check": "alert_check"}
MAX_WAIT_S = 3600.0
# Beyond the delivery wait: waiting for another action to finish (ingest.serve allows one at a
# time, for up to 30 s), the evaluation itself and the answer's trip back.
ANSWER_MARGIN_S = 90.0


def offer_actions(server: QueryServer, engine: AlertEngine) -> None:
    """In `watch`: answer `alerts test` and `alerts check` of other processes with this engine."""

    def test(params: Mapping[str, Any]) -> tuple[pa.Table, dict[str, object]]:
        wait_s = _wait(params)
        return _answer(lambda out: send_test(engine, out, wait_s))

    def check(params: Mapping[str, Any]) -> tuple[pa.Table, dict[str, object]]:
        wait_s = _wait(params)
        return _answer(lambda out: check_now(engine, engine.clock(), out, wait_s,
                                             own_outbox=False))  # fmt: skip

    server.offer(OPS["test"], test)
    server.offer(OPS["check"], check)


def _wait(params: Mapping[str, Any]) -> float:
    value = params.get("wait_s", 30.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WAIT_S:
        raise QueryRefusedError(f"wait_s must be a number of seconds, 0 to {MAX_WAIT_S:g}")
    return float(value)


def _answer(run: Callable[[TextIO], int]) -> tuple[pa.Table, dict[str, object]]:
    """The report as a one-column table of lines, the exit code (or the error) in the header."""
    out = io.StringIO()
    try:
        code = run(out)
    except ConflictRadarError as exc:  # e.g. no channels configured: the sentence, its exit code
        return _lines(""), {"exit_code": exc.exit_code, "error": str(exc)}
    return _lines(out.getvalue()), {"exit_code": code}


def _lines(text: str) -> pa.Table:
    return pa.table({"line": pa.array(text.splitlines(), pa.string())})


def run_in_watcher(settings: Settings, command: str, out: TextIO, wait_s: float) -> int | None:
    """Have the watcher of `settings.db` run `alerts <command>` and print its report; the exit
    code, or None when no watcher serves the database (the caller opens the file itself)."""
    served = connect_served(settings.db, settings.sql)
    if served is None:
        return None
    print(
        f"conflictradar: `watch` owns {settings.db}; the watcher runs this `alerts {command}`"
        " with its own channels and records the outcome",
        file=sys.stderr,
    )
    try:
        table, header = served.act(OPS[command], {"wait_s": wait_s}, wait_s + ANSWER_MARGIN_S)
    except WatcherGone as exc:
        # Not retried: the watcher may have sent the message before it went away.
        busy = f" ({exc.args[0]})" if exc.args else ""
        raise DatabaseError(
            f"the watcher of {settings.db} did not answer the `alerts {command}`{busy}; is it"
            " still running? Its log says what it did"
        ) from None
    error = header.get("error")
    code = header.get("exit_code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise DatabaseError("the watcher's answer has no exit code; is it the same version?")
    if isinstance(error, str):
        failure = ConflictRadarError(error)
        failure.exit_code = code
        raise failure
    for line in table.column("line").to_pylist():
        out.write(f"{line}\n")
    return code
