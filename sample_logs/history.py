"""Keeps labels true by construction: what every scenario did, per path, so nothing disturbs it.

A scenario's 409 is labelled from the requests the scenario itself made. No other request may
change that label: no background 2xx and no other scenario's 2xx may fall inside a rule window of
it (SPEC section 5, rules 2 and 3, across all files). `interferes` answers that question with a
margin wider than any gap between the times a parser could pick (see `timing.stamps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conflictradar.sample_logs.model import RACE_METHODS, SECOND, WRITE_METHODS, Request

RETRY_WINDOW_US = 30 * SECOND
RACE_WINDOW_US = 5 * SECOND
MARGIN_US = 8 * SECOND  # > longest request (6 s) + whole-second truncation
# How far ahead of the background traffic scenarios are planned: a scenario planned later than
# a background request can never share a rule window with it.
LOOKAHEAD_US = RETRY_WINDOW_US + MARGIN_US + 2 * SECOND


def interferes(ok: Request, conflict: Request) -> bool:
    """Could the 2xx `ok` decide rule 2 or 3 for the 409 `conflict`, for any parser?"""
    if ok.path != conflict.path:
        return False
    dt = conflict.start_us - ok.start_us
    if dt < -MARGIN_US or dt > RETRY_WINDOW_US + MARGIN_US:
        return False
    same_client = ok.client.key == conflict.client.key
    if same_client and ok.method == conflict.method:
        return True
    return (
        not same_client
        and conflict.method in RACE_METHODS
        and ok.method in WRITE_METHODS
        and dt <= RACE_WINDOW_US + MARGIN_US
    )


@dataclass
class History:
    """Scenario 2xx and 409 requests by path (mutable; old entries are forgotten)."""

    oks: dict[str, list[Request]] = field(default_factory=dict)
    conflicts: dict[str, list[Request]] = field(default_factory=dict)

    def disturbs(self, req: Request) -> bool:
        if req.ok:
            return any(interferes(req, x) for x in self.conflicts.get(req.path, ()))
        if req.status == 409:
            return any(interferes(e, req) for e in self.oks.get(req.path, ()))
        return False

    def admits(self, requests: list[Request]) -> bool:
        return not any(self.disturbs(r) for r in requests)

    def add(self, requests: list[Request]) -> None:
        for r in requests:
            if r.ok:
                self.oks.setdefault(r.path, []).append(r)
            elif r.status == 409:
                self.conflicts.setdefault(r.path, []).append(r)

    def forget(self, before_us: int) -> None:
        """Drop entries too old to share a window with anything still to be generated."""
        for table in (self.oks, self.conflicts):
            stale = [p for p, rs in table.items() if rs[-1].start_us < before_us]
            for p in stale:
                kept = [r for r in table[p] if r.start_us >= before_us]
                if kept:
                    table[p] = kept
                else:
                    del table[p]
