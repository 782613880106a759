"""A large nginx `combined` log for throughput benchmarks (vectorized, seeded, ~140 bytes/line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

PATHS = np.array(
    ["/api/orders/{}", "/api/orders/{}/items", "/api/users/{}/profile", "/static/app.{}.js",
     "/api/payments/{}/capture", "/health", "/api/inventory/SKU-{}", "/api/orders"]
)  # fmt: skip
METHODS = np.array(["GET", "GET", "GET", "GET", "POST", "PUT", "PATCH", "DELETE"])
STATUS = np.array([200] * 20 + [201, 201, 204, 204, 304, 304, 400, 404, 404, 500, 409])
AGENTS = np.array(
    [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "okhttp/4.12.0",
        "kube-probe/1.30",
    ]
)


def clf_stamps(start: int, n: int) -> pl.Series:
    """CLF times of lines start..start+n, 200 a second from 2025-06-02 08:00 UTC."""
    base = np.datetime64("2025-06-02T08:00:00")
    secs = (np.arange(start, start + n) // 200).astype("timedelta64[s]")
    return pl.Series((base + secs).astype("datetime64[us]")).dt.strftime("%d/%b/%Y:%H:%M:%S +0000")


def write_combined(path: Path, lines: int, seed: int = 1, chunk: int = 500_000) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("wb") as fh:
        for start in range(0, lines, chunk):
            n = min(chunk, lines - start)
            ts = clf_stamps(start, n)
            ids = rng.integers(1, 200_000, n)
            tpl = PATHS[rng.integers(0, len(PATHS), n)]
            frame = pl.DataFrame(
                {
                    "ip": [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 255, (n, 3))],
                    "ts": ts,
                    "m": METHODS[rng.integers(0, len(METHODS), n)],
                    "tpl": tpl,
                    "id": ids.astype(str),
                    "st": STATUS[rng.integers(0, len(STATUS), n)].astype(str),
                    "b": rng.integers(0, 50_000, n).astype(str),
                    "ua": AGENTS[rng.integers(0, len(AGENTS), n)],
                }
            )
            out = frame.select(
                pl.format(
                    '{} - - [{}] "{} {}?page=2 HTTP/1.1" {} {} "-" "{}"',
                    "ip",
                    "ts",
                    "m",
                    pl.col("tpl").str.replace("{}", pl.col("id"), literal=True),
                    "st",
                    "b",
                    "ua",
                )
            ).to_series()
            fh.write(("\n".join(out.to_list()) + "\n").encode())
    return path
