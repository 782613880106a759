"""Soak writer: appends to three gateway logs at a steady rate, rotating them, with bad lines mixed in.

Every good line carries a unique `seq=N` in its query string; bad lines (mutated good lines, and
the two lines that once crashed ingest: a combined line dated year -2025 and an ECS line dated
9999-12-31) carry `bseq=N` (N from 10^9) before mutation. Bursts of 409s on one endpoint at a time make the
alert rules fire and resolve. Rotations alternate rename + create and copytruncate; rotated
files are kept. Writes a JSON summary to `summary` when done (and after every second, so a
crashed harness still knows what was written).

    python -m tests.soak.writer FOLDER SECONDS RATE SEED BAD_SHARE SUMMARY
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from tests.fuzz.mutations import mutate
from tests.rotation import rotate

FILES = {"gw-a.log": 2, "gw-b.log": -5, "svc.jsonl": 0}  # UTC offsets of the CLF files
BURST_EVERY_S = 120.0
BURST_S = 20.0
QUIET_END_S = 240.0  # no burst in the last minutes, so every alert resolves before the end
ROTATE_S = (60.0, 120.0)
POISON_EVERY_S = 60.0
BAD_BASE = 1_000_000_000


def clf_time(now: datetime, offset_h: int) -> str:
    return now.astimezone(timezone(timedelta(hours=offset_h))).strftime("%d/%b/%Y:%H:%M:%S %z")


def line_for(name: str, now: datetime, seq: str, rng: random.Random, burst: str | None) -> str:
    client = rng.randrange(50)
    if burst is not None and rng.random() < 0.15:
        method, path, status = "POST", f"/{burst}/{rng.randrange(500)}/checkout", 409
    else:
        method = rng.choice(["GET", "GET", "GET", "PUT", "POST", "DELETE"])
        path = f"/orders/{rng.randrange(1000)}"
        status = rng.choice([200, 200, 200, 201, 204, 404])
    if name.endswith(".jsonl"):
        return json.dumps(
            {
                "@timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "http": {"request": {"method": method}, "response": {"status_code": status}},
                "url": {"path": path, "query": seq},
                "client": {"ip": f"10.2.0.{client}"},
                "user_agent": {"original": f"client-{client % 7}"},
            },
            separators=(",", ":"),
        )
    return (
        f'10.1.0.{client} - - [{clf_time(now, FILES[name])}] "{method} {path}?{seq} HTTP/1.1"'
        f' {status} 12 "-" "client-{client % 7}"'
    )


def bad(line: str, rng: random.Random) -> str:
    raw = mutate(line.encode(), rng.randrange, rounds=1 + rng.randrange(2))
    # One line stays one line (the accounting counts lines), and never a blank one.
    text = raw.replace(b"\n", b" ").decode("utf-8", errors="replace")
    return text if text.strip() else "x" + text


def main() -> None:
    folder, seconds, rate = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(int(sys.argv[4]))
    bad_share, summary = float(sys.argv[5]), Path(sys.argv[6])
    handles = {name: (folder / name).open("a") for name in FILES}
    rotations = dict.fromkeys(FILES, 0)
    next_rotation = {name: time.monotonic() + rng.uniform(*ROTATE_S) for name in FILES}
    good = mutated = poison = written = 0
    bursts: list[str] = []
    started = time.monotonic()
    next_poison = started + POISON_EVERY_S / 2
    last_summary = 0.0

    def dump(done: bool) -> None:
        body = {"good": good, "bad": mutated + poison, "poison": poison, "lines": written,
                "rotations": sum(rotations.values()), "bursts": bursts, "done": done}  # fmt: skip
        tmp = summary.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, summary)

    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - written
        now = datetime.now(UTC)
        quiet = min(QUIET_END_S, seconds / 4)
        in_burst = elapsed % BURST_EVERY_S < BURST_S and elapsed < seconds - quiet
        burst = ("carts", "invoices")[int(elapsed // BURST_EVERY_S) % 2] if in_burst else None
        if burst is not None and (not bursts or bursts[-1] != f"{int(elapsed // BURST_EVERY_S)}"):
            bursts.append(f"{int(elapsed // BURST_EVERY_S)}")
        for _ in range(max(0, due)):
            name = rng.choice(list(FILES))
            if rng.random() < bad_share:
                # Far from any good seq, so a mutation cannot turn it into one.
                text = bad(line_for(name, now, f"bseq={BAD_BASE + mutated}", rng, burst), rng)
                mutated += 1
            else:
                text = line_for(name, now, f"seq={good}", rng, burst)
                good += 1
            handles[name].write(text + "\n")
            written += 1
        if time.monotonic() >= next_poison:
            next_poison += POISON_EVERY_S
            handles["gw-a.log"].write(
                f'10.9.9.9 - - [20/Nov/-2025:08:00:05 +0000] "GET /poison?pseq={poison} HTTP/1.1"'
                ' 200 1 "-" "poison"\n'
            )
            handles["svc.jsonl"].write(
                '{"@timestamp":"9999-12-31T23:59:59.000Z","http":{"request":{"method":"PUT"},'
                '"response":{"status_code":409}},"url":{"path":"/poison","query":"pseq='
                f'{poison + 1}"}},"client":{{"ip":"10.9.9.9"}}}}\n'
            )
            poison += 2
            written += 2
        for fh in handles.values():
            fh.flush()
        for name in FILES:
            if time.monotonic() >= next_rotation[name]:
                rotations[name] += 1
                rotate(folder, name, handles, rotations[name])
                next_rotation[name] = time.monotonic() + rng.uniform(*ROTATE_S)
        if time.monotonic() - last_summary >= 1.0:
            last_summary = time.monotonic()
            dump(False)
        time.sleep(0.01)
    for fh in handles.values():
        fh.close()
    dump(True)


if __name__ == "__main__":
    main()
