"""Fault-test writer: appends to 3 gateway logs at a steady rate, rotating them both ways.

Every line carries a unique `seq` in its query string. Rotations alternate between rename +
create (logrotate's default) and copytruncate; rotated files are kept so a one-shot ingest can
read every line again. Prints the number of lines written as JSON when done.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from tests.rotation import rotate

NODES = {"node-a.log": 2, "node-b.log": -5, "node-c.log": 0}  # UTC offsets in hours


def clf_time(now: datetime, offset_h: int) -> str:
    local = now.astimezone(timezone(timedelta(hours=offset_h)))
    return local.strftime("%d/%b/%Y:%H:%M:%S %z")


def main() -> None:
    folder, seconds, rate = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 7)
    handles = {name: (folder / name).open("a") for name in NODES}
    rotations = dict.fromkeys(NODES, 0)
    next_rotation = {name: time.monotonic() + rng.uniform(1.5, 4.0) for name in NODES}
    seq = 0
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - seq
        now = datetime.now(UTC)
        for _ in range(max(0, due)):
            name = rng.choice(list(NODES))
            client = rng.randrange(40)
            order = rng.randrange(60)
            method = rng.choice(["GET", "GET", "PUT", "PATCH", "POST", "DELETE"])
            status = rng.choice([200, 200, 200, 201, 409]) if method != "GET" else 200
            path = (
                f"/orders/{order}"
                if method != "POST"
                else rng.choice(["/orders", f"/orders/{order}/cancel"])
            )
            handles[name].write(
                f'10.1.0.{client} - - [{clf_time(now, NODES[name])}] "{method} {path}?seq={seq} '
                f'HTTP/1.1" {status} 12 "-" "client-{client % 7}"\n'
            )
            seq += 1
        for fh in handles.values():
            fh.flush()
        for name in NODES:
            if time.monotonic() >= next_rotation[name]:
                rotations[name] += 1
                rotate(folder, name, handles, rotations[name])
                next_rotation[name] = time.monotonic() + rng.uniform(1.5, 4.0)
        time.sleep(0.01)
    for fh in handles.values():
        fh.close()
    print(json.dumps({"lines": seq, "rotations": sum(rotations.values())}))


if __name__ == "__main__":
    main()
