"""Console output: the ingest progress bar and summary, and query results as table, CSV or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

import polars as pl
import pyarrow as pa

from conflictradar.ingest.escape import terminal, visible
from conflictradar.ingest.pipeline import Progress
from conflictradar.ingest.reports import IngestReport


@contextmanager
def ingest_progress(files: Sequence[Path], quiet: bool) -> Iterator[Progress]:
    """A rich progress bar over the bytes of all files, on a terminal only (stderr)."""
    if quiet or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )  # fmt: skip
    from rich.progress import (
        Progress as Bar,
    )

    total = 0
    for f in files:
        with suppress(OSError):
            total += f.stat().st_size
    bar = Bar(
        TextColumn("ingesting"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), transient=True,
    )  # fmt: skip
    with bar:
        task = bar.add_task("ingest", total=total or None)
        yield lambda n: bar.advance(task, n)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def print_ingest_report(report: IngestReport, out: TextIO) -> None:
    """Per file: format, lines, parsed, rejected, skipped, 409s; then totals and speed."""
    rows = []
    for f in report.files:
        fmt = f.format or "-"
        if f.envelope:
            fmt = f"{fmt} (in {f.envelope})"
        rows.append(
            (f.path, f.status, fmt, _fmt_int(f.lines), _fmt_int(f.parsed), _fmt_int(f.rejected),
             _fmt_int(f.skipped), _fmt_int(f.conflicts))
        )  # fmt: skip
    header = ("file", "status", "format", "lines", "parsed", "rejected", "skipped", "409 lines")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]  # fmt: skip
    line = "  ".join(
        h.ljust(w) if i < 3 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line, file=out)
    for r in rows:
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))), file=out)  # fmt: skip
    lines = report.total("lines")
    speed = lines / report.elapsed_s if report.elapsed_s > 0 else 0.0
    print(
        f"\n{len(report.files)} files, {_fmt_int(lines)} lines: "
        f"{_fmt_int(report.total('parsed'))} parsed, {_fmt_int(report.total('rejected'))} rejected, "
        f"{_fmt_int(report.total('skipped'))} skipped, {_fmt_int(report.total('conflicts'))} 409"
        f" lines = {_fmt_int(report.new_conflicts)} new 409 requests"
        f" in {report.elapsed_s:.2f} s ({_fmt_int(int(speed))} lines/s)",
        file=out,
    )


def print_table(table: pa.Table, fmt: str, out: TextIO) -> None:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if fmt == "csv":
        # CSV has no lists or structs (`conflicts.lines`): such cells are written as JSON.
        nested = [c for c, t in frame.schema.items() if t.is_nested()]
        frame = frame.with_columns(
            pl.Series(c, [json.dumps(v, default=str) for v in frame[c].to_list()], pl.String)
            for c in nested
        )
        out.write(terminal(frame.write_csv()) if out.isatty() else frame.write_csv())
    elif fmt == "json":
        rows = frame.to_dicts()
        text = json.dumps(rows, default=str, ensure_ascii=False, indent=None) + "\n"
        out.write(terminal(text) if out.isatty() else text)
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # Cells and headers are Text, never markup strings: `[link=...]` in a path stays text.
        t = Table(show_lines=False)
        for name in frame.columns:
            t.add_column(Text(visible(name)), overflow="fold")
        for row in frame.iter_rows():
            t.add_row(*(Text("" if v is None else visible(v)) for v in row))
        Console(file=out, soft_wrap=False).print(t)
        print(f"{frame.height} rows", file=out)
