"""Fault-test reader: runs heavy queries in a loop through the read API; reports every error."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conflictradar.ingest.errors import ConflictRadarError
from conflictradar.ingest.reader import open_reader
from conflictradar.ingest.settings import load_settings

HEAVY = [
    "SELECT endpoint, method, count(*) AS n, avg(bytes) AS b, approx_count_distinct(client_ip) AS c,"
    " quantile_cont(line, 0.9) AS q FROM requests GROUP BY ALL ORDER BY n DESC",
    "SELECT count(*) FROM (SELECT a.query FROM (SELECT * FROM requests ORDER BY ts DESC LIMIT 3000) a"
    " JOIN (SELECT * FROM requests ORDER BY ts DESC LIMIT 3000) b ON a.endpoint = b.endpoint"
    " AND a.client_ip <> b.client_ip)",
    "SELECT cause, count(*), min(ts), max(ts) FROM conflicts GROUP BY cause",
]


def main() -> None:
    db, seconds = Path(sys.argv[1]), float(sys.argv[2])
    settings = load_settings(db=db, env={})
    started = time.monotonic()
    queries, errors = 0, []
    while time.monotonic() - started < seconds:
        if not db.exists():
            time.sleep(0.1)
            continue
        for sql in HEAVY:
            try:
                open_reader(settings).query(sql)
                queries += 1
            except ConflictRadarError as exc:
                errors.append(str(exc))
            except Exception as exc:  # anything else is a bug worth seeing
                errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"queries": queries, "errors": errors}))


if __name__ == "__main__":
    main()
