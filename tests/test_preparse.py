"""Several files' small appends parsed as one block (ingest.preparse, blocks.parse_segments)
give each file exactly what parsing it alone gives, for every format allowed to be grouped; a
watcher's look over many files parses once per format and stores what a one-shot ingest stores;
and a part parsed ahead is used only for the very bytes, position and context it came from."""

from __future__ import annotations

import io
import random
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from conflictradar.ingest import pipeline, preparse
from conflictradar.ingest.blocks import Context, Parsed, Segment, parse_block, parse_segments
from conflictradar.ingest.endpoints import Fold
from conflictradar.ingest.formats import ParserState, get_format
from conflictradar.ingest.schema import STRAY
from conflictradar.ingest.settings import load_settings
from conflictradar.sample_logs import tiered
from conflictradar.sample_logs.model import FILES as SAMPLE_FILES
from tests.test_real_logs import EXPECTED_FORMAT
from tests.test_watch import Harness, write
from tests.test_watch_holding import (
    TABLES,
    _assert_as_one_shot,
    _grow,
    _started,
    assert_same_as_one_shot,
)

# What a combined file in the wild holds besides plain lines (beside the real logs' own): CRLF
# endings, bytes that are not UTF-8, escaped quotes (a backslash makes the parser undo escapes
# in its block) and the private-use characters it uses for them (which that changes).
ODD_LINES = [
    b"not an access line at all",
    b"",
    b"   ",
    b'10.0.0.9 - - [04/Dec/2026:10:00:01 +0000] "GET /a\\"b HTTP/1.1" 200 5 "-" "curl \\"x\\""',
    b'"203.0.113.7, 10.0.0.1" 10.0.0.2 - - [04/Dec/2026:10:00:02 +0000] "GET /x HTTP/1.1" 409 0'
    b' "-" "-"',
    b'10.0.0.9 - - [04/Dec/2026:10:00:03 +0000] "PUT /orders/42 HTTP/1.1" 409 12 "-" "k6/0.49"\r',
    b'10.0.0.9 - - [31/Feb/2026:10:00:03 +0000] "GET /bad-date HTTP/1.1" 200 1 "-" "-"',
    b"\xff\xfe binary \x01\x02 \xe2\x82",
    b'10.0.0.9 - - [04/Dec/2026:10:00:04 +0000] "GET /a\xe2\x82\xacb HTTP/1.1" 200 5 "-" "\xc3("',
    '10.0.0.9 - - [04/Dec/2026:10:00:05 +0000] "GET /x\ue000y HTTP/1.1" 409 1 "-" "a\ue001"'.encode(),
]
SAMPLES = Path(__file__).resolve().parents[1] / "sample_logs" / "data"
_AFTER_BYTES = re.compile(rb'^(.*?"[^"]*" \S+ \S+).*$', re.S)


def _combined_lines(real_logs: Path) -> list[bytes]:
    lines = []
    for name, fmt in EXPECTED_FORMAT.items():
        if fmt == "combined":
            lines += (real_logs / name).read_bytes().split(b"\n")[:150]
    random.Random(3).shuffle(lines)
    for at in (0, 450, 900):  # spread out, so several files hold each
        for k, odd in enumerate(ODD_LINES):
            lines[at + k * 37 : at + k * 37] = [odd]
    return lines


# What a JSON log in the wild holds besides records: broken, non-object and plain lines, CRLF,
# bytes that are not UTF-8, escapes.
ODD_JSON = [
    b"",
    b"{not json",
    b"[1, 2]",
    b"server started on :8080",
    b'{"level":"info","msg":"listening"}',
    b'{"request":{"method":"GET","uri":"/a\\"b\\u00e9"},"status":409}\r',
    b'{"msg":"\xff\xfe"}',
    b'{"level":"info","ts":1764846000.5,"logger":"http.log.access","msg":"handled request",'
    b'"request":{"remote_ip":"10.0.0.7","method":"PUT","host":"shop.example","uri":"/orders/7",'
    b'"headers":{"User-Agent":["curl/8"]}},"duration":0.012,"size":31,"status":409}',
]


def _json_lines(fmt: str, real_logs: Path) -> list[bytes]:
    """Lines of `fmt` from the real logs and the bundled samples, shuffled, odd lines among them."""
    lines = []
    for name, known in EXPECTED_FORMAT.items():
        if known == fmt:
            lines += (real_logs / name).read_bytes().split(b"\n")[:150]
    for f in SAMPLE_FILES:
        if f.format == fmt and f.format != "envoy":  # the sample's envoy lines are in CRI
            lines += (SAMPLES / f.name).read_bytes().split(b"\n")[:300]
    if fmt in ("envoy", "ecs"):  # a fleet's gateway text lines and service records
        rng = random.Random(11)
        for hop in tiered.simulate(11, 300, 1_764_000_000_000_000):
            if fmt == "envoy":
                lines.append(tiered.envoy_line(hop).encode())
            elif hop.service:
                lines.append(tiered.ecs_line(hop, rng).encode())
    rng = random.Random(5)
    rng.shuffle(lines)
    for at in range(0, len(lines), len(lines) // 3):
        lines[at:at] = ODD_JSON
    return lines


def _lines_of(fmt: str, real_logs: Path) -> list[bytes]:
    if fmt in ("apigw", "caddy", "ecs", "envoy", "traefik"):
        return _json_lines(fmt, real_logs)
    combined = _combined_lines(real_logs)
    if fmt == "combined":
        return combined
    if fmt == "common":
        return [_AFTER_BYTES.sub(rb"\1", line) for line in combined]
    if fmt == "vcombined":
        return [b"shop%d.example.com:443 %s" % (i % 3, line) if line.strip() else line
                for i, line in enumerate(combined)]  # fmt: skip
    raise AssertionError(f"no lines for {fmt}: add them when it joins GROUPABLE")


def _segments(lines: list[bytes], seed: int, most: int = 40) -> list[Segment]:
    """`lines` cut into files of 1-`most` lines each, at made-up offsets and line numbers."""
    rng = random.Random(seed)
    found, i = [], 0
    while i < len(lines):
        n = rng.randint(1, most)
        data = b"".join(line + b"\n" for line in lines[i : i + n])
        k = len(found)
        found.append(Segment(f"/var/log/site{k}.log", data, rng.randint(0, 10**6), 1 + 7 * k))
        i += n
    return found


def _alone(segment: Segment, fmt: str, ctx: Context) -> Parsed:
    return parse_block(segment.data, segment.start, segment.first_line, False, (),
                       get_format(fmt), None, ParserState(), ctx, segment.path,
                       final=True)  # fmt: skip


def _assert_same(part: Parsed, alone: Parsed, path: str) -> None:
    for name in ("requests", "rejects", "conflict_lines"):
        assert_frame_equal(getattr(part, name), getattr(alone, name))
    key = list(alone.minutes.columns)
    assert_frame_equal(part.minutes.sort(key), alone.minutes.sort(key))
    for name in ("lines", "skipped", "end", "unterminated", "last_line_start", "time_read"):
        assert getattr(part, name) == getattr(alone, name), (name, path)


def _context(tmp_path: Path, segments: list[Segment], fmt: str) -> Context:
    """A context that already knows the folds all these lines teach (as a running watcher's)."""
    ctx = Context(load_settings(db=tmp_path / "x.duckdb", env={}), (), ())
    data = b"".join(s.data for s in segments)
    whole = parse_block(data, 0, 1, False, (), get_format(fmt), None, ParserState(), ctx, "/a",
                        final=True)  # fmt: skip
    return Context(ctx.settings, (), whole.folds)


def _assert_as_alone(segments: list[Segment], fmt: str, ctx: Context) -> list[Parsed]:
    together = parse_segments(segments, get_format(fmt), ParserState(), ctx)
    assert len(together) == len(segments)
    for segment, part in zip(segments, together, strict=True):
        _assert_same(part, _alone(segment, fmt, ctx), segment.path)
        assert part.folds == ()
    return together


def _opener(data: bytes, start: int) -> Callable[[], io.BytesIO]:
    """A reader over a file that holds `data` from offset `start`."""
    return lambda: io.BytesIO(b"\n" * start + data)


@pytest.mark.parametrize("fmt", sorted(preparse.GROUPABLE))
def test_appends_of_many_files_parse_together_as_each_alone(
    fmt: str, real_logs: Path, tmp_path: Path
) -> None:
    """Through the watcher's own path (fill, then each read's take): every part equals the
    file's block parsed alone, whatever the other files hold."""
    lines = _lines_of(fmt, real_logs)
    clf = fmt in ("combined", "common", "vcombined")
    cut = _segments(lines, seed=len(fmt), most=40 if clf else 6)
    segments = [replace(s, start=s.start % 5000) for s in cut]
    assert len(segments) > 10
    if clf:  # both kinds, so grouping by escapes shows
        assert 1 < sum(s.escapes for s in segments) < len(segments) - 1
    ctx = _context(tmp_path, segments, fmt)
    found = preparse.Preparsed()
    found.fill([preparse.Candidate(s.path, _opener(s.data, s.start), s.start, s.first_line,
                                   get_format(fmt), ParserState()) for s in segments],
               ctx, 1 << 20, 1 << 16)  # fmt: skip
    parts = [found.take(s.path, s.start, s.data, s.first_line, ctx) for s in segments]
    assert all(p is not None for p in parts)
    for segment, part in zip(segments, parts, strict=True):
        assert part is not None
        _assert_same(part, _alone(segment, fmt, ctx), segment.path)
    shown = [p for p in parts if p is not None]
    assert sum(p.requests.height for p in shown) > len(lines) // (2 if clf else 8)
    assert sum(p.rejects.height for p in shown) > 0
    assert sum(p.conflict_lines.height for p in shown) > 0
    assert sum(p.skipped for p in shown) > 0


def _line(day: int, n: int) -> str:
    return f'10.0.0.{n} - - [{day:02d}/Nov/2026:10:00:{n:02d} +0000] "GET /p/{n} HTTP/1.1" 200 1 "-" "-"'


def test_a_stray_time_is_judged_among_its_own_files_lines(tmp_path: Path) -> None:
    """A file whose one line is days from its neighbours in the block (other files' lines) keeps
    it; a one-line glitch inside a file is still rejected."""
    lone = Segment("/b.log", f"{_line(20, 1)}\n".encode(), 0, 1)
    glitch = [_line(2, 1), _line(2, 2), _line(25, 3), _line(2, 4)]
    segments = [
        Segment("/a.log", "".join(f"{_line(2, n)}\n" for n in range(1, 6)).encode(), 0, 1),
        lone,
        Segment("/c.log", "".join(f"{line}\n" for line in glitch).encode(), 0, 1),
        Segment("/d.log", "".join(f"{_line(2, n)}\n" for n in range(1, 4)).encode(), 0, 1),
    ]
    ctx = Context(load_settings(db=tmp_path / "x.duckdb", env={}), (), ())
    parts = _assert_as_alone(segments, "combined", ctx)
    assert parts[1].requests.height == 1 and parts[1].rejects.height == 0
    assert parts[2].rejects["reason"].to_list() == [STRAY]
    assert parts[2].rejects["line"].to_list() == [3]


def _static(path: str, i: int) -> Segment:
    line = f'10.0.0.1 - - [02/Nov/2026:10:00:00 +0000] "GET /static/page-{i}x.js HTTP/1.1" 200 1 "-" "-"'
    return Segment(path, f"{line}\n".encode(), 0, 1)


def test_a_fold_that_only_many_files_together_show_is_learned_and_applied(
    tmp_path: Path,
) -> None:
    """No file alone shows that `/static/{x}` is high-cardinality; their appends together do, as
    one file's block of the same lines would: every part carries the fold, its rows folded."""
    settings = load_settings(db=tmp_path / "x.duckdb", env={})
    segments = [_static(f"/s{i}.log", i) for i in range(settings.endpoints.fold_threshold)]
    ctx = Context(settings, (), ())
    parts = parse_segments(segments, get_format("combined"), ParserState(), ctx)
    assert {p.folds for p in parts} == {(Fold("/static", 2),)}
    assert {e for p in parts for e in p.requests["endpoint"]} == {"/static/{id}"}
    assert {e for p in parts for e in p.minutes["endpoint"]} == {"/static/{id}"}
    few = parse_segments(segments[:3], get_format("combined"), ParserState(), ctx)
    assert all(p.folds == () for p in few)


def test_a_look_that_learns_a_fold_records_it_once_and_folds_every_file(
    tmp_path: Path, logs: Path
) -> None:
    threshold = 20
    config = tmp_path / "c.toml"
    config.write_text(f"[endpoints]\nfold_threshold = {threshold}\n")
    files = [logs / f"s{i}.log" for i in range(threshold)]
    for i, f in enumerate(files):
        write(f, 1000 * i, 3)
    h = Harness(tmp_path, str(logs))
    h.settings = load_settings(config, db=h.db, env={})
    h.restart()
    h.poll()
    for i, f in enumerate(files):
        with f.open("a") as fh:
            fh.write(_static(str(f), i).data.decode())
    assert h.poll() == threshold
    assert h.store.endpoint_folds() == (Fold("/static", 2),)
    stored = h.store.con.execute(
        "SELECT DISTINCT endpoint FROM requests WHERE path LIKE '/static/%'"
    ).fetchall()
    assert stored == [("/static/{id}",)]
    h.close()


def test_a_part_is_taken_only_for_its_own_bytes_position_and_context(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(3):
        write(logs / f"s{i}.log", 100 * i, 5, mode="w")
    ctx = Context(load_settings(db=tmp_path / "x.duckdb", env={}), (), ())
    fmt = get_format("combined")
    found = preparse.Preparsed()

    def candidates() -> list[preparse.Candidate]:
        return [preparse.Candidate(str(p), lambda p=p: p.open("rb"), 0, 1, fmt, ParserState())
                for p in sorted(logs.iterdir())]  # fmt: skip

    found.fill(candidates(), ctx, 1 << 20, 1 << 16)
    paths = [str(p) for p in sorted(logs.iterdir())]
    data = [Path(p).read_bytes() for p in paths]
    other_ctx = Context(ctx.settings, (), ())
    assert found.take(paths[0], 0, data[0] + b"x\n", 1, ctx) is None  # the file grew since
    assert found.take(paths[1], 0, data[1], 2, ctx) is None  # another first line
    assert found.take(paths[2], 0, data[2], 1, other_ctx) is None  # a fold learned since
    found.fill(candidates(), ctx, 1 << 20, 1 << 16)
    part = found.take(paths[1], 0, data[1], 1, ctx)
    assert part is not None and part.requests.height == 5
    assert found.take(paths[1], 0, data[1], 1, ctx) is None  # taken once
    found.clear()
    assert found.take(paths[0], 0, data[0], 1, ctx) is None
    # A format that keeps state between blocks, or an unknown one, is never grouped.
    w3c = get_format("w3c")
    found.fill([preparse.Candidate(c.path, c.opener, 0, 1, w3c, ParserState())
                for c in candidates()], ctx, 1 << 20, 1 << 16)  # fmt: skip
    assert found.take(paths[0], 0, data[0], 1, ctx) is None


def test_a_look_over_many_files_parses_once_and_stores_as_one_shot(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _started(tmp_path, logs)
    calls = {"together": 0, "alone": 0}

    def counted(name: str, f: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return f(*args, **kwargs)

        return call

    monkeypatch.setattr(preparse, "parse_segments", counted("together", parse_segments))
    monkeypatch.setattr(pipeline, "parse_block", counted("alone", parse_block))
    assert h.poll() == 0
    assert calls == {"together": 0, "alone": 0}  # nothing new: nothing parsed
    assert h.poll() == 0
    grown = _grow(logs)
    assert h.poll() == grown
    assert calls == {"together": 1, "alone": 0}
    _assert_as_one_shot(h, logs, tmp_path)
    h.close()


@pytest.mark.parametrize("where", ["parse", "look"])
def test_a_failure_parsing_together_leaves_each_file_to_its_own_parse(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    h = _started(tmp_path, logs)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("polars: something unforeseen")

    if where == "parse":  # one format's joint block
        monkeypatch.setattr(preparse, "parse_segments", broken)
    else:  # anything else in gathering the appends
        monkeypatch.setattr(pipeline.Ingester, "preparse", broken)
    grown = _grow(logs)
    assert h.poll() == grown
    _assert_as_one_shot(h, logs, tmp_path)
    h.close()


def test_two_files_under_one_path_and_large_appends_are_parsed_alone(tmp_path: Path) -> None:
    """A file moved away and draining keeps its old path, which a new file may take: a joint
    block split by path would give each the other's rollup. An append larger than
    GROUP_BYTES amortises its own parse and is not held twice."""
    ctx = Context(load_settings(db=tmp_path / "x.duckdb", env={}), (), ())
    fmt = get_format("combined")
    one = "".join(f"{_line(2, n)}\n" for n in range(1, 3)).encode()
    two = "".join(f"{_line(2, n)}\n" for n in range(3, 6)).encode()
    big = f"{_line(2, 9)}\n".encode() * (preparse.GROUP_BYTES // 70)
    found = preparse.Preparsed()
    files = [("/a.log", one, 9000), ("/a.log", two, 0), ("/b.log", one, 0), ("/c.log", two, 0),
             ("/d.log", big, 0)]  # fmt: skip
    found.fill([preparse.Candidate(path, _opener(data, start), start, 1, fmt, ParserState())
                for path, data, start in files], ctx, 1 << 20, 1 << 16)  # fmt: skip
    for path, data, start in files[:2] + files[4:]:
        assert found.take(path, start, data, 1, ctx) is None
    for path, data in (("/b.log", one), ("/c.log", two)):
        part = found.take(path, 0, data, 1, ctx)
        assert part is not None
        assert int(part.minutes["requests"].sum()) == data.count(b"\n")


def test_a_fleets_gateway_and_service_appends_parse_together_and_store_as_one_shot(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Envoy gateways and two ECS services of the same requests: a look parses the
    gateways' appends as one block and the services' as another, and the watcher then holds
    what one ingest of the whole files holds: links, causes and rollups included."""
    source = tmp_path / "fleet"
    start = int((time.time() - 3600) * 1e6)
    tiered.write(source, seed=4, requests=400, start_us=start)
    names = [*tiered.GATEWAYS, *tiered.SERVICES]
    whole = {n: (source / n).read_bytes().splitlines(keepends=True) for n in names}
    for n in names:
        (logs / n).write_bytes(b"".join(whole[n][: len(whole[n]) * 3 // 5]))
    h = Harness(tmp_path, str(logs))
    h.poll()
    calls = {"together": 0}

    def counted(*args: object, **kwargs: object) -> object:
        calls["together"] += 1
        return parse_segments(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(preparse, "parse_segments", counted)
    for n in names:
        with (logs / n).open("ab") as fh:
            fh.write(b"".join(whole[n][len(whole[n]) * 3 // 5 :]))
    assert h.poll() == sum(len(lines) - len(lines) * 3 // 5 for lines in whole.values())
    assert calls == {"together": 2}
    assert_same_as_one_shot(h, logs, tmp_path, {**TABLES, "request_links": "*"})
    counted = h.store.con.execute("SELECT count(*) FROM conflicts").fetchone()
    assert counted is not None and counted[0] > 0
    h.close()
