"""The sample-log generator: determinism, file shapes, labels re-derived independently, live mode.

The reference below re-reads the written files with its own small parsers (not the generator's
records) and applies SPEC section 5 to every 409, once per choice of timestamp field for the
formats that log two times. Every choice must give exactly the labels in labels.csv.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conflictradar.sample_logs.generate import (
    DEFAULT_LINES,
    DEFAULT_SEED,
    DEFAULT_START,
    parse_start,
    write_batch,
)
from conflictradar.sample_logs.live import run_live
from conflictradar.sample_logs.model import FILES

DATA = Path(__file__).resolve().parents[1] / "sample_logs" / "data"
# fmt: off
CAUSES = {"gateway_conflict", "retry_after_success", "concurrent_update", "version_mismatch",
          "duplicate_create", "resource_locked", "state_conflict", "unknown"}
VERBS = {"cancel", "approve", "submit", "pay", "confirm", "close", "reopen", "publish", "archive",
         "activate", "deactivate", "complete", "refund", "capture", "void", "start", "stop",
         "retry", "lock", "unlock", "merge", "checkout", "verify"}
KEYWORDS = (  # SPEC section 5, rule 4, in order; `lock` must start a word
    ("version_mismatch", ("version", "etag", "e-tag", "revision", "stale", "precondition",
                          "if-match", "modified since", "out of date", "outdated")),
    ("duplicate_create", ("already exists", "duplicate", "unique")),
    ("resource_locked", ("lock", "locked", "in use", "busy", "being modified", "being processed",
                         "being updated")),
    ("state_conflict", ("state", "status", "transition", "cannot", "can't", "not allowed",
                        "already cancelled", "already closed", "already completed",
                        "already paid", "already shipped", "already processed",
                        "already refunded")),
)
# Catalogue texts (SPEC 5) the generator writes whose words alone do not name their cause.
CATALOGUE_TEXTS = {"operationaborted": "resource_locked", "bucketalreadyownedbyyou": "duplicate_create"}
# fmt: on
SECOND = 1_000_000


@dataclass(frozen=True)
class Row:
    file: str
    line: int
    fmt: str
    times: tuple[int, ...]  # UTC us; two entries where the format logs two times
    client: tuple[str, str]
    method: str
    path: str
    status: int
    upstream: int | None
    message: str | None


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * SECOND + dt.microsecond


def _iso(text: str) -> int:
    m = re.fullmatch(r"(.{19})(?:\.(\d+))?Z", text)
    assert m, text
    base = datetime.fromisoformat(m[1] + "+00:00")
    return _us(base) + int(((m[2] or "") + "000000")[:6])


def _clf(text: str) -> int:
    return _us(datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z"))


def _absent(value: object) -> str | None:
    return None if value in (None, "", "-") else str(value)


def _parse(fmt: str, line: str) -> tuple:
    """(times, ip, ua, method, target, status, upstream, message) from one line."""
    if fmt == "combined":
        m = re.fullmatch(
            r'(\S+) - - \[([^\]]+)\] "(\S+) (\S+) HTTP/[\d.]+" (\d{3}) \d+ "[^"]*" "([^"]*)"', line
        )
        assert m, line
        return (_clf(m[2]),), m[1], m[6], m[3], m[4], int(m[5]), None, None
    if fmt in ("apigw", "traefik", "ecs"):
        d = json.loads(line)
        if fmt == "apigw":
            up = None if d["integrationStatus"] == "-" else int(d["integrationStatus"])
            return (
                (int(d["requestTimeEpoch"]) * 1000, _clf(d["requestTime"])),
                d["ip"],
                d["userAgent"],
                d["httpMethod"],
                d["path"],
                int(d["status"]),
                up,
                _absent(d["errorMessage"]),
            )
        if fmt == "traefik":
            up = d["OriginStatus"] or None
            return (
                (_iso(d["StartUTC"]),),
                d["ClientHost"],
                d["request_User-Agent"],
                d["RequestMethod"],
                d["RequestPath"],
                d["DownstreamStatus"],
                up,
                _absent(d["msg"]),
            )
        err = d.get("error", {}).get("message")
        return (
            (_iso(d["@timestamp"]),),
            d["client"]["ip"],
            d["user_agent"]["original"],
            d["http"]["request"]["method"],
            d["url"]["path"],
            d["http"]["response"]["status_code"],
            None,
            err or d["message"],
        )
    if fmt == "envoy":
        stamp, stream, tag, body = line.split(" ", 3)
        assert (stream, tag) == ("stdout", "F")
        d = json.loads(body)
        return (
            (_iso(d["start_time"]), _iso(stamp)),
            d["x_forwarded_for"],
            d["user_agent"],
            d["method"],
            d["path"],
            d["response_code"],
            None,
            None,
        )
    tokens = re.findall(r'\[[^\]]*\]|"[^"]*"|\S+', line)
    if fmt == "alb":
        method, url, _ = tokens[12].strip('"').split(" ")
        up = None if tokens[9] == "-" else int(tokens[9])
        target = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
        return (
            (_iso(tokens[1]), _iso(tokens[21])),
            tokens[3].rsplit(":", 1)[0],
            tokens[13].strip('"'),
            method,
            target,
            int(tokens[8]),
            up,
            None,
        )
    assert fmt == "s3"
    method, target, _ = tokens[8].strip('"').split(" ")
    return (
        (_clf(tokens[2].strip("[]")),),
        tokens[3],
        tokens[16].strip('"'),
        method,
        target,
        int(tokens[9]),
        None,
        _absent(tokens[10]),
    )


def read_rows(folder: Path) -> list[Row]:
    rows = []
    for f in FILES:
        for n, line in enumerate((folder / f.name).read_text(encoding="utf-8").splitlines(), 1):
            times, ip, ua, method, target, status, up, msg = _parse(f.format, line)
            rows.append(
                Row(
                    f.name,
                    n,
                    f.format,
                    times,
                    (ip, ua),
                    method,
                    target.split("?")[0],
                    status,
                    up,
                    msg,
                )
            )
    return rows


def _message_cause(message: str) -> str | None:
    if message.lower() in CATALOGUE_TEXTS:
        return CATALOGUE_TEXTS[message.lower()]
    # SPEC 5: CamelCase and snake_case read as words ("BucketAlreadyExists": "already exists");
    # the raw text is tried too ("ETag" stays "etag").
    words = re.sub(
        r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", message)
    )
    text = message.lower() + " | " + re.sub(r"[_.]+", " ", words).lower()
    for cause, words in KEYWORDS:
        for w in words:
            if re.search(r"\b" + w, text) if w.startswith("lock") else w in text:
                return cause
    return None


def classify(rows: list[Row], choice: dict[str, int]) -> dict[tuple[str, int], str]:
    """SPEC section 5 for every 409, with format `f`'s time taken from times[choice[f]]."""

    def t(r: Row) -> int:
        return r.times[choice.get(r.fmt, 0)]

    oks: dict[str, list[Row]] = {}
    for r in rows:
        if 200 <= r.status <= 299:
            oks.setdefault(r.path, []).append(r)
    out = {}
    for x in rows:
        if x.status != 409:
            continue
        before = [e for e in oks.get(x.path, []) if t(x) >= t(e)]
        if x.upstream is not None and x.upstream != 409:
            cause = "gateway_conflict"
        elif any(
            e.client == x.client and e.method == x.method and t(x) - t(e) <= 30 * SECOND
            for e in before
        ):
            cause = "retry_after_success"
        elif x.method in ("PUT", "PATCH", "DELETE") and any(
            e.client != x.client
            and e.method in ("POST", "PUT", "PATCH", "DELETE")
            and t(x) - t(e) <= 5 * SECOND
            for e in before
        ):
            cause = "concurrent_update"
        elif x.message and _message_cause(x.message):
            cause = str(_message_cause(x.message))
        elif x.method == "POST":
            cause = (
                "state_conflict"
                if x.path.rstrip("/").split("/")[-1] in VERBS
                else "duplicate_create"
            )
        elif x.method in ("PUT", "PATCH"):
            cause = "version_mismatch"
        elif x.method == "DELETE":
            cause = "state_conflict"
        else:
            cause = "unknown"
        out[(x.file, x.line)] = cause
    return out


def read_labels(folder: Path) -> dict[tuple[str, int], str]:
    with (folder / "labels.csv").open(encoding="utf-8") as f:
        return {(r["file"], int(r["line"])): r["cause"] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    write_batch(out, seed=7, lines=6_000, start_us=parse_start("2025-03-30T22:00:00Z"), hours=6)
    return out


@pytest.mark.parametrize("folder", ["sample", "shipped"])
def test_reference_classifier_agrees_for_every_timestamp_choice(folder: str, sample: Path) -> None:
    where = sample if folder == "sample" else DATA
    rows = read_rows(where)
    labels = read_labels(where)
    dual = ("apigw", "envoy", "alb")
    for picks in itertools.product((0, 1), repeat=len(dual)):
        derived = classify(rows, dict(zip(dual, picks, strict=True)))
        wrong = {k: (labels.get(k), v) for k, v in derived.items() if labels.get(k) != v}
        assert not wrong, f"timestamp choice {picks}: {list(wrong.items())[:5]}"
        assert set(derived) == set(labels)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    args = {"lines": 3_000, "start_us": parse_start(DEFAULT_START), "hours": 4.0}
    write_batch(tmp_path / "a", seed=3, **args)  # type: ignore[arg-type]
    write_batch(tmp_path / "b", seed=3, **args)  # type: ignore[arg-type]
    write_batch(tmp_path / "c", seed=4, **args)  # type: ignore[arg-type]
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted([f.name for f in FILES] + ["labels.csv", "spikes.csv"])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "orders-gw-a.log").read_bytes() != (
        tmp_path / "c" / "orders-gw-a.log"
    ).read_bytes()


def test_shipped_data_is_the_default_run(tmp_path: Path) -> None:
    write_batch(
        tmp_path,
        seed=DEFAULT_SEED,
        lines=DEFAULT_LINES,
        start_us=parse_start(DEFAULT_START),
        hours=24,
    )
    for p in sorted(tmp_path.iterdir()):
        assert p.read_bytes() == (DATA / p.name).read_bytes(), (
            f"{p.name}: regenerate sample_logs/data"
        )


@pytest.mark.parametrize("folder", ["sample", "shipped"])
def test_every_cause_is_well_represented_and_labels_point_at_409s(
    folder: str, sample: Path
) -> None:
    where = sample if folder == "sample" else DATA
    rows = read_rows(where)
    labels = read_labels(where)
    conflicts = {(r.file, r.line) for r in rows if r.status == 409}
    assert set(labels) == conflicts
    counts = Counter(labels.values())
    assert set(counts) == CAUSES
    for cause, n in counts.items():
        assert n >= 0.02 * len(labels), f"{cause}: {n} of {len(labels)}"


def test_lines_per_file_and_total(sample: Path) -> None:
    sizes = {f.name: len((sample / f.name).read_text(encoding="utf-8").splitlines()) for f in FILES}
    assert sum(sizes.values()) == 6_000
    for name, n in sizes.items():
        assert n >= 0.04 * 6_000, name
    assert abs(sizes["orders-gw-a.log"] - sizes["orders-gw-b.log"]) < 0.2 * sizes["orders-gw-a.log"]


def test_gateway_nodes_carry_their_utc_offsets(sample: Path) -> None:
    for name, offset in (("orders-gw-a.log", "+0200"), ("orders-gw-b.log", "-0500")):
        zones = {
            m
            for line in (sample / name).read_text().splitlines()
            for m in re.findall(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d ([+-]\d{4})\]", line)
        }
        assert zones == {offset}


def _race_winners(rows: list[Row], x: Row) -> list[Row]:
    return [
        e
        for e in rows
        if e.path == x.path
        and 200 <= e.status <= 299
        and e.client != x.client
        and e.method in ("POST", "PUT", "PATCH", "DELETE")
        and 0 <= x.times[0] - e.times[0] <= 6 * SECOND
    ]


def test_edge_cases_are_present_in_the_shipped_data() -> None:
    rows = read_rows(DATA)
    labels = read_labels(DATA)
    by_path: dict[str, list[Row]] = {}
    for r in rows:
        by_path.setdefault(r.path, []).append(r)
    gaps: Counter[tuple[str, int]] = Counter()
    cross_file = late = 0
    for x in rows:
        if x.status != 409 or x.method not in ("PUT", "PATCH", "DELETE"):
            continue
        for e in _race_winners(by_path[x.path], x):
            gaps[(labels[(x.file, x.line)], x.times[0] - e.times[0])] += 1
            if labels[(x.file, x.line)] == "concurrent_update":
                cross_file += e.file != x.file
                late += e.file == x.file and e.line > x.line
    assert gaps[("concurrent_update", 5 * SECOND)] > 0
    assert any(c != "concurrent_update" and d in (5 * SECOND + 1_000, 6 * SECOND) for c, d in gaps)
    assert cross_file > 0 and late > 0
    retry_gaps = set()
    for x in rows:
        if x.status == 409:
            for e in by_path[x.path]:
                if e.client == x.client and e.method == x.method and 200 <= e.status <= 299:
                    retry_gaps.add((labels[(x.file, x.line)], x.times[0] - e.times[0]))
    assert ("retry_after_success", 30 * SECOND) in retry_gaps
    assert any(
        c != "retry_after_success" and d in (30 * SECOND + 1_000, 31 * SECOND)
        for c, d in retry_gaps
    )
    blocked = [
        labels[(r.file, r.line)]
        for r in rows
        if r.status == 409 and r.message and "blocked" in r.message
    ]
    assert blocked and "resource_locked" not in blocked


def test_spikes_csv_is_consistent(sample: Path) -> None:
    rows = [r for r in read_rows(sample) if r.status == 409]
    with (sample / "spikes.csv").open(encoding="utf-8") as f:
        spikes = list(csv.DictReader(f))
    assert spikes and list(spikes[0]) == ["start", "end", "scope", "value", "file"]
    windows = [(_iso(s["start"]), _iso(s["end"])) for s in spikes]
    margin = 5 * 60 * SECOND
    span = max(r.times[0] for r in rows) - min(r.times[0] for r in rows)
    quiet = span - sum(end - start + 2 * margin for start, end in windows)
    for s, (start, end) in zip(spikes, windows, strict=True):
        assert 5 * 60 * SECOND <= end - start <= 10 * 60 * SECOND
        scope = s["scope"]
        pattern = re.compile("^" + re.escape(scope).replace(r"\{id\}", "[^/]+") + "$")
        in_scope = [r for r in rows if scope == "global" or pattern.match(r.path)]
        hits = [r for r in in_scope if start <= r.times[0] < end]
        assert int(s["value"]) == len(hits)
        outside = [
            r
            for r in in_scope
            if not any(a - margin <= r.times[0] < b + margin for a, b in windows)
        ]
        usual = len(outside) / quiet * (end - start)
        assert len(hits) >= 6 * usual, (scope, len(hits), usual)  # about 10x, Poisson noise aside
        files = {r.file for r in hits}
        assert s["file"] == "*" or set(s["file"].split(";")) == files
    windows.sort()
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start - end >= 30 * 60 * SECOND, "spikes need quiet periods between them"


def test_live_mode_appends_lines_and_stops(tmp_path: Path) -> None:
    stop = threading.Event()
    worker = threading.Thread(
        target=run_live,
        args=(tmp_path,),
        kwargs={"seed": 1, "rate": 400.0, "spike_every_s": 1.0, "stop": stop},
    )
    worker.start()
    time.sleep(2.5)
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()
    rows = read_rows(tmp_path)
    assert len(rows) > 200
    now = time.time() * SECOND
    assert all(abs(r.times[0] - now) < 120 * SECOND for r in rows)
    labels = read_labels(tmp_path)
    assert all(r.status == 409 for r in rows if (r.file, r.line) in labels)
    assert (tmp_path / "spikes.csv").read_text().startswith("start,end,scope,value,file\n")
