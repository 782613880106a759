"""nginx `combined` lines that look like production traffic (vectorized, seeded).

`make bench`'s uniform file has 8 endpoint shapes, ids below 200,000 and ~3% 409s. This one has
what makes ingest slow on real gateways: 60,000 client IPs, ten endpoint shapes whose ids reach
10^7 (so endpoint templating meets millions of distinct paths), query strings, referers, a few
dozen user agents and 5% 409s. The same generator feeds the watch-cost benchmark's live writer.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from bench.gen_combined import clf_stamps

# (path template, methods it is called with): ids are substituted for {}.
SHAPES = (
    ("/api/v2/orders/{}", ("GET", "GET", "PUT", "PATCH", "DELETE")),
    ("/api/v2/orders/{}/items", ("GET", "POST")),
    ("/api/v2/users/{}/profile", ("GET", "GET", "PATCH")),
    ("/api/v2/carts/{}/checkout", ("POST",)),
    ("/api/v2/payments/{}/capture", ("POST",)),
    ("/api/v2/inventory/SKU-{}", ("GET", "PUT")),
    ("/api/v2/orders", ("GET", "POST")),
    ("/api/v2/sessions/{}", ("GET", "DELETE")),
    ("/static/app.{}.js", ("GET",)),
    ("/healthz", ("GET",)),
)
MAX_ID = 10_000_000
CLIENTS = 60_000
CONFLICT_SHARE = 0.05
OTHER_STATUS = np.array([200] * 30 + [201, 201, 204, 204, 304, 400, 401, 404, 404, 429, 500, 502])
AGENTS = np.array(
    [f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0"
     " Safari/537.36" for v in range(110, 130)]
    + [f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
       for v in range(6)]
    + [f"shop-android/{v}.3.1 okhttp/4.12.0" for v in range(4, 12)]
    + ["curl/8.5.0", "python-requests/2.32.3", "Go-http-client/2.0", "kube-probe/1.30"]
)  # fmt: skip
REFERERS = np.array(["-", "-", "-", "https://shop.example.com/", "https://shop.example.com/cart",
                     "https://www.google.com/"])  # fmt: skip
_TEMPLATES = np.array([s for s, _ in SHAPES])
_SHAPE_WEIGHTS = np.array([22, 10, 12, 6, 5, 10, 8, 7, 12, 8], dtype=float)


def _client_ips(rng: np.random.Generator) -> np.ndarray:
    """CLIENTS distinct addresses (a fixed pool, so a client comes back)."""
    nums = rng.choice(np.arange(1 << 24), CLIENTS, replace=False)
    return np.array([f"{100 + (x >> 16) % 100}.{(x >> 8) & 255}.{x & 255}.{(x * 7) % 254 + 1}"
                     for x in nums.tolist()])  # fmt: skip


class Traffic:
    """A seeded source of realistic lines; `lines(n, start, per_second)` is vectorized."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        self.ips = _client_ips(self.rng)
        # Per shape, the methods as an array; a row picks its method among its shape's.
        self._methods = [np.array(m) for _, m in SHAPES]

    def frame(self, n: int) -> pl.DataFrame:
        """n rows of (ip, method, path, status, bytes, referer, agent), no timestamps."""
        rng = self.rng
        shape = rng.choice(len(SHAPES), n, p=_SHAPE_WEIGHTS / _SHAPE_WEIGHTS.sum())
        method = np.empty(n, dtype=object)
        for i, methods in enumerate(self._methods):
            sel = shape == i
            method[sel] = methods[rng.integers(0, len(methods), int(sel.sum()))]
        # Ids: a long tail up to 10^7 with some hot resources (a few ids get many requests).
        ids = np.where(rng.random(n) < 0.2, rng.integers(1, 500, n), rng.integers(1, MAX_ID, n))
        conflict = rng.random(n) < CONFLICT_SHARE
        status = np.where(conflict, 409, OTHER_STATUS[rng.integers(0, len(OTHER_STATUS), n)])
        query = np.where(rng.random(n) < 0.3, "?page=" + rng.integers(1, 50, n).astype(str), "")
        return pl.DataFrame(
            {
                "ip": self.ips[rng.integers(0, CLIENTS, n)],
                "m": method.astype(str),
                "tpl": _TEMPLATES[shape],
                "id": ids.astype(str),
                "q": query,
                "st": status.astype(str),
                "b": rng.integers(0, 60_000, n).astype(str),
                "ref": REFERERS[rng.integers(0, len(REFERERS), n)],
                "ua": AGENTS[rng.integers(0, len(AGENTS), n)],
            }
        )

    def lines(self, n: int, stamps: pl.Series) -> bytes:
        """n lines, one per entry of `stamps` (strings in CLF's `[...]` format), newline-ended."""
        f = self.frame(n).with_columns(stamps.alias("ts"))
        path = pl.col("tpl").str.replace("{}", pl.col("id"), literal=True)
        fields = ("ip", "ts", "m", path, "q", "st", "b", "ref", "ua")
        out = f.select(
            pl.format('{} - - [{}] "{} {}{} HTTP/1.1" {} {} "{}" "{}"', *fields)
        ).to_series()
        return ("\n".join(out.to_list()) + "\n").encode() if n else b""


def now_stamps(n: int, at: datetime | None = None) -> pl.Series:
    stamp = (at or datetime.now(UTC)).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return pl.Series([stamp] * n, dtype=pl.String)


def past_stamps(n: int, per_second: int) -> pl.Series:
    """CLF times of n lines written `per_second` a second, the last one in the second before
    now (a log the watcher finds when it starts, not a burst of n lines in one second)."""
    end = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "s")
    secs = ((n - 1 - np.arange(n)) // per_second + 1).astype("timedelta64[s]")
    return pl.Series((end - secs).astype("datetime64[us]")).dt.strftime("%d/%b/%Y:%H:%M:%S +0000")


def write_realistic(path: Path, lines: int, seed: int = 1, chunk: int = 500_000) -> Path:
    """`lines` lines, 200 a second from 2025-06-02 08:00 UTC."""
    traffic = Traffic(seed)
    with path.open("wb") as fh:
        for start in range(0, lines, chunk):
            n = min(chunk, lines - start)
            fh.write(traffic.lines(n, clf_stamps(start, n)))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--lines", type=int, default=2_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    write_realistic(args.out, args.lines, args.seed)


if __name__ == "__main__":
    main()
