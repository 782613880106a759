"""Property: any bytes in, every line accounted for (a request, a reject or a skipped line), and
never a traceback — for every format of the registry (and auto-detection), bare or in an envelope.

Files are built from each format's real seed lines, mutated (tests/fuzz/mutations.py), mixed with
arbitrary bytes, and fed through the real one-shot ingest into a real DuckDB file. Deterministic
(derandomized) so `make test` is repeatable; `make fuzz` is the long random run.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conflictradar.ingest.pipeline import Ingester
from conflictradar.ingest.schema import EARLIEST, FUTURE_SLACK
from conflictradar.ingest.settings import load_settings
from conflictradar.ingest.store import Store
from tests.fuzz.corpus import ENVELOPES, seeds, specs, wrap
from tests.fuzz.mutations import mutate

EXAMPLES = 8  # per format: ~20 formats x 8 files of up to 30 lines: ~25 s of CPU in all
_names = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb"
    with Store.open(db) as opened:
        yield opened  # type: ignore[misc]


@st.composite
def log_bytes(draw: st.DrawFn, spec: str) -> bytes:
    """A file's bytes: the format's header lines maybe, then mutated seed lines, arbitrary bytes
    and blank lines, maybe in an envelope, maybe without a final newline."""
    headers, lines = seeds(spec)
    pick = lambda n: draw(st.integers(0, n - 1))  # noqa: E731
    envelope = draw(st.sampled_from([None, *ENVELOPES]))
    out: list[bytes] = list(headers) if headers and draw(st.booleans()) else []
    for n in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["seed", "mutated", "mutated", "bytes", "blank"]))
        if kind == "bytes":
            line = draw(st.binary(max_size=120))
        elif kind == "blank":
            line = draw(st.sampled_from([b"", b" ", b"\t", b"\r"]))
        else:
            line = lines[pick(len(lines))]
            if kind == "mutated":
                line = mutate(line, pick, rounds=draw(st.integers(1, 3)))
        if envelope:
            line = wrap(envelope, line, n)
            if draw(st.integers(0, 9)) == 0:
                line = mutate(line, pick)  # the envelope itself broken
        out.append(line)
    data = b"\n".join(out)
    return data if draw(st.booleans()) else data + b"\n"


def _expected_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@pytest.mark.parametrize("spec", [None, *specs()], ids=lambda s: "auto" if s is None else s[:20])
def test_any_bytes_every_line_accounted_for(store: Store, spec: str | None) -> None:
    folder = store.path.parent
    run_settings = load_settings(db=store.path, env={})

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=log_bytes(spec or "combined"))
    def check(data: bytes) -> None:
        path = folder / f"f{next(_names)}.log"
        path.write_bytes(data)
        # Every example is a new file: forget the others, or one that starts with the same
        # 64+ bytes would be taken for this one's earlier (rotated) copy and resumed.
        store.con.execute("DELETE FROM files")
        ingester = Ingester(store, run_settings, forced=spec)
        report = ingester.ingest([path]).files[0]
        lines = _expected_lines(data)
        if not data:
            assert report.status == "unchanged"
            return
        if report.status == "unrecognized":  # auto-detection found no format: one sentence
            assert spec is None and "format not recognised" in report.message
            return
        assert report.status == "ok", report
        assert report.lines == lines
        records = report.parsed + report.rejected + report.skipped
        if report.envelope is None:
            assert records == lines
        else:  # an envelope may join pieces of one long line into one record
            assert 1 <= records <= lines
        key = {"file": str(path)}
        stored = store.con.execute(
            "SELECT count(*), count(DISTINCT line), min(line), max(line), min(ts), max(ts)"
            " FROM requests WHERE file = $file",
            key,
        ).fetchone()
        rejected = store.con.execute(
            "SELECT count(*), count(DISTINCT line), min(line), max(line) FROM rejects"
            " WHERE file = $file",
            key,
        ).fetchone()
        both = store.con.execute(
            "SELECT count(*) FROM (SELECT line FROM requests WHERE file = $file"
            " INTERSECT SELECT line FROM rejects WHERE file = $file)",
            key,
        ).fetchone()
        assert stored is not None and rejected is not None
        assert stored[:2] == (report.parsed, report.parsed)
        assert rejected[:2] == (report.rejected, report.rejected)
        assert both == (0,)
        for low, high in (stored[2:4], rejected[2:4]):
            assert low is None or 1 <= low <= high <= lines
        if stored[0]:
            latest = datetime.now(UTC) + FUTURE_SLACK + timedelta(minutes=1)
            assert EARLIEST <= stored[4] <= stored[5] <= latest

    check()
