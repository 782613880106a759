"""Which timestamps a request's log line carries, and whether two requests fall in a rule window.

Several formats log two times (API Gateway: `requestTime` in seconds and `requestTimeEpoch` in ms;
ALB: `request_creation_time` and `time`; Envoy: `start_time` and the container runtime's time). A
parser may store either, so a label is only sound if the rule decides the same way for every
choice: `within` answers True or False when it does, None when the choice would matter.
"""

from __future__ import annotations

import math

from conflictradar.sample_logs.model import FILE_BY_NAME, SECOND, Request

MS = 1_000
# Formats whose single logged time the generator can place exactly (window-edge cases go there).
EXACT_FORMATS = ("combined", "traefik", "s3", "ecs")


def format_of(req: Request) -> str:
    return FILE_BY_NAME[req.source].format


def cri_time_ns(req: Request) -> int:
    """When the container runtime stamped Envoy's line: just after the response, in ns."""
    lag_us = 40 + req.rid % 2_000
    return (req.end_us + lag_us) * 1_000 + (req.rid >> 16) % 1_000


def stamps(req: Request) -> tuple[int, ...]:
    """Every UTC time (us) a parser could store for this line, preferred field first."""
    fmt = format_of(req)
    start, end = req.start_us, req.end_us
    if fmt == "combined":  # nginx $time_local: when the line is logged, whole seconds
        return (end - end % SECOND,)
    if fmt == "apigw":  # requestTimeEpoch (ms), requestTime (s)
        return (start - start % MS, start - start % SECOND)
    if fmt == "traefik":  # StartUTC
        return (start,)
    if fmt == "envoy":  # start_time (ms), CRI envelope time
        return (start - start % MS, cri_time_ns(req) // 1_000)
    if fmt == "alb":  # time (response sent), request_creation_time
        return (end, start)
    if fmt == "s3":  # Time: when the request was received, whole seconds
        return (start - start % SECOND,)
    if fmt == "ecs":  # @timestamp: logged at the end, ms
        return (end - end % MS,)
    raise ValueError(f"unknown format {fmt!r}")


def written_at(req: Request) -> int:
    """When the line is appended to its file (us); files are in this order."""
    if format_of(req) == "envoy":
        return cri_time_ns(req) // 1_000
    return req.end_us


def deltas(earlier: Request, later: Request) -> list[int]:
    """`t(later) - t(earlier)` for every consistent choice of logged time per format."""
    a, b = stamps(earlier), stamps(later)
    if format_of(earlier) == format_of(later):
        return [y - x for x, y in zip(a, b, strict=True)]
    return [y - x for x in a for y in b]


def within(earlier: Request, later: Request, window_us: int) -> bool | None:
    """SPEC's "within N s before": 0 <= t(later) - t(earlier) <= N, decided for every parser."""
    inside = [0 <= d <= window_us for d in deltas(earlier, later)]
    if all(inside):
        return True
    if not any(inside):
        return False
    return None


def start_for_stamp(source: str, stamp_us: int, duration_us: int, jitter_us: int) -> int:
    """The start time that makes an exact-format line carry `stamp_us` (edge cases).

    `jitter_us` (0 <= jitter < 1 s) places the hidden sub-second part of whole-second formats.
    """
    fmt = FILE_BY_NAME[source].format
    if fmt == "combined":
        return stamp_us + jitter_us % SECOND - duration_us
    if fmt == "traefik":
        return stamp_us
    if fmt == "s3":
        return stamp_us + jitter_us % SECOND
    if fmt == "ecs":
        return stamp_us + jitter_us % MS - duration_us
    raise ValueError(f"{fmt} logs more than one time; its edges cannot be placed exactly")


def diurnal(t_us: int) -> float:
    """Traffic relative to the daily mean: quiet around 03:00 UTC, busiest around 15:00 UTC."""
    hour = (t_us / SECOND / 3600.0) % 24.0
    return 1.0 + 0.6 * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0)
