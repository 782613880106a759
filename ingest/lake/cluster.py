"""One lake ingest run, driven from here and executed by a Dask cluster.

1. Plan: each input's identity and the byte ranges of it the manifest does not hold yet.
2. Parse: one task per range (plus a line count per range, for the line numbers of the next);
   each writes its Parquet files and then its manifest record.
3. Explain: one task per hour whose inputs changed (new ranges in it or next to it), running the
   one-machine classifier over the hour and its edges.

A worker that dies mid-task has its tasks re-run elsewhere by the scheduler; since every output
name is a function of the input and every file is renamed into place whole, the re-run writes
the same files and nothing is stored twice. A driver that dies leaves at most files without a
manifest record, which the next run removes before it starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from conflictradar.ingest import endpoints
from conflictradar.ingest.blocks import Context
from conflictradar.ingest.errors import ConflictRadarError, UsageError
from conflictradar.ingest.lake import layout
from conflictradar.ingest.lake.manifest import Unit, known_sources, load_units, match_source
from conflictradar.ingest.lake.plan import (
    Choice,
    Skipped,
    Work,
    choose_format,
    inspect_all,
    plan_round,
)
from conflictradar.ingest.lake.tasks import (
    HourTask,
    RangeTask,
    classify_hours,
    count_lines,
    parse_range,
)
from conflictradar.ingest.paths import expand_paths
from conflictradar.ingest.reports import FileReport, IngestReport
from conflictradar.ingest.settings import Settings
from conflictradar.ingest.sources import Source

SPLIT_BYTES = 64 << 20  # a range per 64 MB of a large plain file
# Hours are explained in runs of up to about this many requests per task (memory: ~1 GB).
CLASSIFY_ROWS = 2_000_000


class ClusterError(ConflictRadarError):
    """The Dask cluster cannot be reached or started."""


@contextlib.contextmanager
def open_client(address: str) -> Iterator[Any]:
    """A Dask client: `local:N` starts N single-threaded worker processes here; anything else
    is a scheduler address (`tcp://host:8786`)."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"--cluster {address}: use local:N with N >= 1 workers")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    if "://" not in address:
        raise UsageError(
            f"--cluster {address}: give a scheduler address (tcp://HOST:PORT) or local:N"
        )
    try:
        client = Client(address, timeout="15s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        yield client


@contextlib.contextmanager
def lake_lock(lake: Path) -> Iterator[None]:
    """One ingest run per lake at a time (the manifest has one writer)."""
    path = lake / layout.LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another ingest into the lake {lake} is running") from None
        yield


def remove_orphans(lake: Path, units: Sequence[Unit]) -> int:
    """Delete files no manifest record names (a run killed before its records) and temp files."""
    keep = {f for u in units for f in u.files}
    removed = 0
    for path in layout.data_files(lake):
        rel = path.relative_to(lake).as_posix()
        if rel.split("/", 1)[0] in layout.HOUR_TABLES:
            continue  # written per hour, each time whole; not a range's file
        if rel not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    for path in layout.temp_files(lake):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def range_tasks(work: Work, lake: Path) -> list[RangeTask]:
    s = work.source
    return [
        RangeTask(
            str(lake),
            work.sid,
            str(s.path),
            s.dev,
            s.inode,
            s.compressed,
            work.fp_len,
            work.fp_hash,
            work.format_spec,
            work.envelope,
            a,
            b,
            work.first_line,
        )
        for a, b in work.ranges
    ]


def _submit_work(client: Any, work: Work, lake: Path, ctx: Context) -> list[Any]:
    """Futures of the source's parse tasks; each gets the line counts of the ranges before it."""
    tasks = range_tasks(work, lake)
    counts = [
        client.submit(
            count_lines, t.path, t.start, t.end, key=f"count-{work.sid}-{t.start}-{t.end}"
        )
        for t in tasks[:-1]
    ]
    return [
        client.submit(
            parse_range,
            t,
            ctx,
            *counts[:i],
            key=f"parse-{layout.unit_name(t.sid, t.start, t.end)}",
            retries=1,
        )
        for i, t in enumerate(tasks)
    ]


def hour_tasks(lake: Path, units: Sequence[Unit], max_rows: int = CLASSIFY_ROWS) -> list[HourTask]:
    """Hours whose inputs (ranges with rows in the hour or the hours beside it) changed since
    their causes were last computed, grouped into runs of consecutive hours of up to about
    `max_rows` requests (one classification pass per run, not per hour)."""
    by_hour: dict[str, list[Unit]] = {}
    rows: dict[str, float] = {}
    for u in units:
        for h in u.hours:
            by_hour.setdefault(h, []).append(u)
            rows[h] = rows.get(h, 0.0) + u.parsed / max(len(u.hours), 1)
    groups: list[list[tuple[str, list[str]]]] = []
    size = 0.0
    previous: str | None = None
    for key in sorted(by_hour):
        hour = layout.parse_hour_key(key)
        near = [layout.hour_key(hour + d * layout.HOUR) for d in (-1, 0, 1)]
        inputs = sorted({u.name for h in near for u in by_hour.get(h, [])})
        marker = lake / layout.CLASSIFIED / f"{key}.json"
        if marker.exists() and layout.read_json(marker).get("inputs") == inputs:
            continue
        adjacent = previous is not None and near[0] == previous
        if not groups or not adjacent or size + rows[key] > max_rows:
            groups.append([])
            size = 0.0
        groups[-1].append((key, inputs))
        size += rows[key]
        previous = key
    out = []
    for group in groups:
        first = layout.parse_hour_key(group[0][0])
        last = layout.parse_hour_key(group[-1][0])
        span = [layout.hour_key(first - layout.HOUR)]
        at = first
        while at <= last + layout.HOUR:
            span.append(layout.hour_key(at))
            at += layout.HOUR
        dirs = tuple(layout.hour_dir("requests", layout.parse_hour_key(k)) + "/" for k in span)
        files = {f for k in span for u in by_hour.get(k, []) for f in u.files if f.startswith(dirs)}
        out.append(HourTask(str(lake), tuple(k for k, _ in group), tuple(sorted(files)),
                            tuple(tuple(i) for _, i in group)))  # fmt: skip
    return out


def learn_lake_folds(lake: Path, settings: Settings, units: Sequence[Unit]) -> list[list[object]]:
    """Folds across the whole lake: those ranges learned, plus high-cardinality positions of
    every endpoint stored (what the one-machine ingest learns at its end). Saved for readers."""
    import duckdb
    import polars as pl

    known = [endpoints.Fold(p, k) for u in units for p, k in u.folds]
    saved = lake / layout.FOLDS
    if saved.exists():
        known += [endpoints.Fold(str(p), int(k)) for p, k in layout.read_json(saved)]
    files = [str(lake / f) for u in units for f in u.files if f.startswith("request_minutes/")]
    if files:
        con = duckdb.connect(":memory:")
        try:
            rows = con.execute(
                "SELECT DISTINCT endpoint FROM read_parquet($f) WHERE endpoint IS NOT NULL",
                {"f": files},
            ).fetchall()
        finally:
            con.close()
        threshold = settings.endpoints.fold_threshold
        if len(rows) >= threshold:
            series = pl.Series("endpoint", [r[0] for r in rows], dtype=pl.String)
            known += endpoints.learn_folds(series, threshold, tuple(known))
    unique = list(dict.fromkeys(known))
    data: list[list[object]] = [[f.prefix, f.position] for f in unique]
    if not saved.exists() or layout.read_json(saved) != data:
        layout.write_json(data, saved)
    return data


def _choose_formats(
    client: Any, sources: Sequence[Source], units: Sequence[Unit], forced: str | None
) -> dict[str, Choice]:
    """Each file's format, detected on the workers (a stored source keeps the format it was
    stored with, unless --format says otherwise)."""
    known = known_sources(units)
    futures = []
    for s in sources:
        match = match_source(s, known)
        spec = match.format_spec if match else None
        env = match.envelope if match else None
        futures.append(client.submit(choose_format, s, spec, env, forced, pure=False))
    return {str(s.path): c for s, c in zip(sources, client.gather(futures), strict=True)}


def _digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _context(settings: Settings, lake: Path) -> Context:
    routes = (
        endpoints.load_openapi(settings.endpoints.openapi) if settings.endpoints.openapi else []
    )
    saved = lake / layout.FOLDS
    folds = layout.read_json(saved) if saved.exists() else []
    return Context(settings, tuple(routes), tuple(endpoints.Fold(str(p), int(k)) for p, k in folds))


def _file_report(work: Work, futures: Sequence[Any]) -> tuple[FileReport, list[Unit]]:
    from distributed import wait

    wait(futures)
    report = FileReport(str(work.source.path), format=work.format, envelope=work.envelope)
    units: list[Unit] = []
    for fut in futures:
        if fut.status != "finished":
            exc = fut.exception()
            report.status = "error"
            report.message = str(exc) if isinstance(exc, ConflictRadarError) else (
                f"{work.source.path}: a worker failed on it ({type(exc).__name__}: {exc})"
            )  # fmt: skip
            continue
        unit: Unit = fut.result()
        units.append(unit)
        report.lines += unit.lines
        report.parsed += unit.parsed
        report.rejected += unit.rejected
        report.skipped += unit.skipped
        report.conflicts += unit.conflicts
    return report, units


def ingest_to_lake(
    client: Any, paths: Sequence[str], lake: Path, settings: Settings, forced: str | None = None,
    split_bytes: int = SPLIT_BYTES,
) -> tuple[IngestReport, int]:  # fmt: skip
    """Store what is new in `paths` into `lake`; (per-file report, hours explained)."""
    started = time.perf_counter()
    files = expand_paths(paths)
    lake.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    with lake_lock(lake):
        units = load_units(lake)
        remove_orphans(lake, units)
        ctx = _context(settings, lake)
        sources, unreadable = inspect_all(files)
        report.files.extend(
            FileReport(s.path, status=s.status, message=s.message) for s in unreadable
        )
        choices = _choose_formats(client, sources, units, forced)
        while sources:
            items, sources = plan_round(sources, known_sources(units), choices, split_bytes)
            submitted = [
                (item, _submit_work(client, item, lake, ctx))
                for item in items
                if isinstance(item, Work)
            ]
            for item in items:
                if isinstance(item, Skipped):
                    report.files.append(FileReport(item.path, status=item.status,
                                                   format=item.format, message=item.message))  # fmt: skip
            for work, futures in submitted:
                file_report, new = _file_report(work, futures)
                report.files.append(file_report)
                units.extend(new)
        learn_lake_folds(lake, settings, units)
        explain = hour_tasks(lake, units)
        futures = [
            client.submit(
                classify_hours,
                t,
                settings,
                key=f"classify-{t.hours[0]}-{_digest(t.files)}",
                retries=1,
            )
            for t in explain
        ]
        client.gather(futures)
        # A killed worker's task may have left a temporary file; its re-run wrote the real one.
        remove_orphans(lake, units)
    report.elapsed_s = time.perf_counter() - started
    return report, sum(len(t.hours) for t in explain)


def run_lake_ingest(
    settings: Settings, paths: Sequence[str], lake: Path | None, cluster: str | None,
    forced: str | None, quiet: bool,
) -> int:  # fmt: skip
    """`conflictradar ingest PATH... --lake DIR [--cluster ADDRESS]`; the exit code."""
    import os
    import sys

    from conflictradar.ingest.render import print_ingest_report

    if lake is None:
        raise UsageError("--cluster needs --lake DIR (the cluster writes a Parquet lake)")
    if "-" in paths:
        raise UsageError("--lake reads files the workers can open; standard input cannot be split")
    address = cluster or f"local:{os.cpu_count() or 1}"
    with open_client(address) as client:
        workers = len(client.scheduler_info().get("workers", {}))
        report, hours = ingest_to_lake(client, paths, lake, settings, forced)
    for f in report.files:
        if f.status in ("unrecognized", "error"):
            print(f"conflictradar: {f.message}", file=sys.stderr)
    if not quiet:
        print_ingest_report(report, sys.stdout)
        print(f"lake {lake}: {hours} hour partition(s) explained on {workers} worker(s)"
              f" at {address}", file=sys.stderr)  # fmt: skip
    failed = [f for f in report.files if f.status in ("unrecognized", "error")]
    return 1 if failed and len(failed) == len(report.files) else 0
