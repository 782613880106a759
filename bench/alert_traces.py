"""The labelled alert-quality set: access-log traces with known 409-rate spikes and traffic surges.

Each trace is hours of nginx combined-format traffic over a handful of endpoints, each with its
own usual 409 rate, a slow daily-like swell, bursty 409s (a 409 is retried and fails again about
a third of the time, so counts vary more than a Poisson's), and labelled events:

- `surge`: requests x factor on every endpoint at an unchanged 409 rate (must page no one);
- `global`: every endpoint's 409 rate x factor (must page);
- `endpoint`: one endpoint's 409 rate x factor (must page, naming that endpoint);
and a cold start: every trace begins on an empty database, some of them inside a surge.

Generated with numpy per second (Poisson arrivals, multinomial endpoint mix), written as log files
that go through the real ingest like any user's logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

START = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)

# (template, method, share of requests, usual 409 rate)
ENDPOINTS: tuple[tuple[str, str, float, float], ...] = (
    ("/orders/{id}", "PATCH", 0.25, 0.05),
    ("/carts/{id}", "PUT", 0.20, 0.03),
    ("/payments/{id}/capture", "POST", 0.10, 0.04),
    ("/invoices/{id}/finalize", "POST", 0.05, 0.06),
    ("/users/{id}", "GET", 0.25, 0.002),
    ("/search", "GET", 0.10, 0.0),
    ("/inventory/{id}", "PUT", 0.05, 0.08),
)
RETRY_AGAIN = 0.33  # a 409 whose client retries into another 409


@dataclass(frozen=True)
class Event:
    """A labelled event: minutes from the trace start, how long, what, how strong."""

    kind: str  # surge | global | endpoint
    at_min: float
    minutes: float
    factor: float
    endpoint: str = ""

    def start(self) -> datetime:
        return START + timedelta(minutes=self.at_min)

    def end(self) -> datetime:
        return self.start() + timedelta(minutes=self.minutes)

    @property
    def spike(self) -> bool:
        return self.kind != "surge"


@dataclass(frozen=True)
class Trace:
    name: str
    hours: float
    rate: float  # requests per second at the mean
    events: tuple[Event, ...]
    seed: int


TRACES: tuple[Trace, ...] = (
    Trace(
        "mixed",
        6.0,
        10.0,
        (
            Event("surge", 50, 20, 4.0),
            Event("global", 80, 8, 3.0),
            Event("endpoint", 120, 6, 6.0, "/carts/{id}"),
            Event("surge", 160, 30, 4.0),
            Event("global", 170, 6, 4.0),  # a spike during a surge
            Event("endpoint", 230, 5, 8.0, "/payments/{id}/capture"),
            Event("surge", 270, 15, 3.0),
            Event("endpoint", 275, 6, 5.0, "/orders/{id}"),  # during a surge
            Event("global", 320, 10, 2.5),
        ),
        11,
    ),
    Trace(
        "low-traffic",
        6.0,
        1.0,
        (
            Event("global", 90, 10, 5.0),
            Event("surge", 140, 30, 4.0),
            Event("endpoint", 200, 10, 8.0, "/orders/{id}"),
            Event("endpoint", 290, 10, 10.0, "/invoices/{id}/finalize"),
        ),
        12,
    ),
    Trace(
        "busy-quiet",
        6.0,
        30.0,
        (
            Event("surge", 60, 10, 10.0),  # a sudden 10x step
            Event("surge", 150, 60, 2.0),
            Event("surge", 260, 5, 6.0),
        ),
        13,
    ),
    Trace(
        "cold-surge",
        6.0,
        10.0,
        (
            Event("surge", 0, 25, 4.0),  # the database starts inside a surge
            Event("endpoint", 45, 6, 6.0, "/inventory/{id}"),  # as soon as history allows
            Event("global", 200, 8, 3.0),
        ),
        14,
    ),
)


def _factor(
    events: tuple[Event, ...], kind: str, seconds: np.ndarray, endpoint: str = ""
) -> np.ndarray:
    out = np.ones(seconds.shape)
    for e in events:
        if e.kind == kind and e.endpoint == endpoint:
            inside = (seconds >= e.at_min * 60) & (seconds < (e.at_min + e.minutes) * 60)
            out[inside] *= e.factor
    return out


def requests_of(trace: Trace) -> pl.DataFrame:
    """Every request of the trace: ts (seconds from START), endpoint index, status."""
    rng = np.random.default_rng(trace.seed)
    seconds = np.arange(int(trace.hours * 3600))
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * seconds / (4 * 3600.0))
    per_second = rng.poisson(trace.rate * swell * _factor(trace.events, "surge", seconds))
    ts = np.repeat(seconds, per_second) + rng.random(int(per_second.sum()))
    shares = np.array([e[2] for e in ENDPOINTS])
    endpoint = rng.choice(len(ENDPOINTS), size=ts.size, p=shares / shares.sum())
    second = ts.astype(np.int64)
    p409 = np.zeros(ts.size)
    glob = _factor(trace.events, "global", seconds)
    for i, (template, _, _, rate) in enumerate(ENDPOINTS):
        mine = endpoint == i
        spike = _factor(trace.events, "endpoint", seconds, template)
        p409[mine] = np.minimum(rate * glob[second[mine]] * spike[second[mine]], 0.9)
    conflict = rng.random(ts.size) < p409
    # Bursty 409s: some are retried into another 409 a moment later.
    again = conflict & (rng.random(ts.size) < RETRY_AGAIN)
    retry_ts = ts[again] + rng.uniform(0.2, 3.0, int(again.sum()))
    frame = pl.DataFrame(
        {
            "ts": np.concatenate([ts, retry_ts]),
            "endpoint": np.concatenate([endpoint, endpoint[again]]),
            "status": np.concatenate(
                [np.where(conflict, 409, 200), np.full(int(again.sum()), 409)]
            ),
        }
    )
    return frame.filter(pl.col("ts") < trace.hours * 3600).sort("ts")


def write_trace(trace: Trace, out: Path) -> int:
    """Write the trace as an nginx combined log; the number of lines."""
    frame = requests_of(trace)
    rng = np.random.default_rng(trace.seed + 1)
    names = pl.DataFrame(
        {
            "endpoint": np.arange(len(ENDPOINTS), dtype=np.int64),
            "t": [e[0] for e in ENDPOINTS],
            "m": [e[1] for e in ENDPOINTS],
        }
    )
    frame = frame.with_columns(pl.col("endpoint").cast(pl.Int64)).join(
        names, on="endpoint", maintain_order="left"
    )
    ids = rng.integers(1000, 99999, frame.height)
    start_us = int(START.timestamp() * 1e6)
    lines = frame.with_columns(
        pl.from_epoch((pl.col("ts") * 1e6).cast(pl.Int64) + start_us, time_unit="us")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%d/%b/%Y:%H:%M:%S +0000")
        .alias("when"),
        pl.Series("id", ids).cast(pl.String),
        (pl.lit(10) + pl.col("endpoint")).cast(pl.String).alias("ip"),
    ).select(
        pl.format(
            '10.0.{}.{} - - [{}] "{} {} HTTP/1.1" {} 120 "-" "eval-client/1.0"',
            pl.col("ip"),
            (pl.col("endpoint") * 7 % 250).cast(pl.String),
            pl.col("when"),
            pl.col("m"),
            pl.col("t").str.replace("{id}", pl.col("id"), literal=True),
            pl.col("status").cast(pl.String),
        ).alias("line")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    lines.write_csv(out, include_header=False, quote_style="never")
    return lines.height
