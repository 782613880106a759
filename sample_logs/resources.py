"""The traffic model's resources: identifiers of several shapes and which of them are popular.

Shapes: integers, UUIDs, hex, ULIDs, prefixed ids (`inv_8f3a91c2`, `SKU-4417`), emails, dates.
Each kind keeps a growing pool; `pick` favours popular ids, `fresh` mints a new one (a resource a
scenario can use knowing no other request has touched it).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from conflictradar.sample_logs.model import SECOND

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FIRST = (
    "anna",
    "ben",
    "chloe",
    "david",
    "elena",
    "farid",
    "grace",
    "hugo",
    "ines",
    "jonas",
    "kemal",
    "lea",
    "marta",
    "noah",
    "olga",
    "pablo",
    "quinn",
    "rosa",
    "sven",
    "tara",
)
_LAST = (
    "meyer",
    "novak",
    "garcia",
    "kowalski",
    "smith",
    "rossi",
    "dubois",
    "jensen",
    "silva",
    "tanaka",
    "okafor",
    "larsen",
    "moreau",
    "weber",
    "horvat",
    "murphy",
)
_DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.com")
_TEAMS = ("finance", "legal", "marketing", "engineering", "sales", "hr", "ops")
_FOLDERS = ("reports", "contracts", "drafts", "invoices", "archive", "templates", "q2-planning")
_TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka")


def ulid(rng: random.Random, t_us: int) -> str:
    value = ((t_us // 1_000) << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def make_id(kind: str, rng: random.Random, counter: int, t_us: int) -> str:
    """A new identifier of `kind`; `counter` numbers the ids minted so far for that kind."""
    if kind == "order":
        return str(1_048_000 + counter * 3 + rng.randint(0, 2))
    if kind in ("item", "version"):
        return str(counter % 9 + 1)
    if kind in ("cart", "user", "document", "upload"):
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "email":
        n = rng.randint(1, 99) if rng.random() < 0.4 else ""
        return f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{n}@{rng.choice(_DOMAINS)}"
    if kind == "payment":
        return "pay_" + _hex(rng, 16)
    if kind == "refund":
        return "re_" + _hex(rng, 12)
    if kind == "payout":
        day = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=counter % 365)
        return day.strftime("%Y-%m-%d")
    if kind == "sku":
        return f"SKU-{1000 + counter * 7 % 8999}"
    if kind == "warehouse":
        return str(counter % 14 + 1)
    if kind == "reservation":
        return ulid(rng, t_us)
    if kind == "session":
        return _hex(rng, 32)
    if kind == "invoice":
        return "inv_" + _hex(rng, 8)
    if kind == "subscription":
        return "sub_" + _hex(rng, 14)
    if kind == "customer":
        return "cus_" + _hex(rng, 12)
    if kind == "team":
        return _TEAMS[counter % len(_TEAMS)]
    if kind == "folder":
        return f"{_FOLDERS[counter % len(_FOLDERS)]}-{2023 + counter // len(_FOLDERS) % 3}"
    if kind == "tenant":
        return _TENANTS[counter % len(_TENANTS)]
    if kind == "bucket":
        return f"acme-tmp-{rng.choice(('eu', 'us'))}-{_hex(rng, 6)}"
    raise ValueError(f"unknown id kind {kind!r}")


# Kinds with a fixed, small population (no fresh ids: they are not where conflicts happen).
_BOUNDED = {"item": 9, "version": 9, "warehouse": 14, "team": 7, "folder": 21, "tenant": 8}


@dataclass
class Resources:
    """Pools of known ids per kind (mutable: fresh ids join their pool)."""

    rng: random.Random
    scale: int
    pools: dict[str, list[str]] = field(default_factory=dict)
    minted: dict[str, int] = field(default_factory=dict)

    def _ensure(self, kind: str, t_us: int) -> list[str]:
        pool = self.pools.get(kind)
        if pool is None:
            size = _BOUNDED.get(kind, max(60, self.scale // 40))
            pool = []
            self.pools[kind] = pool
            for _ in range(size):
                pool.append(self._mint(kind, t_us - 30 * 86_400 * SECOND))
        return pool

    def _mint(self, kind: str, t_us: int) -> str:
        n = self.minted.get(kind, 0)
        self.minted[kind] = n + 1
        return make_id(kind, self.rng, n, t_us)

    def pick(self, kind: str, t_us: int) -> str:
        """A known id, popular ones more often."""
        pool = self._ensure(kind, t_us)
        return pool[int(len(pool) * self.rng.random() ** 1.8)]

    def fresh(self, kind: str, t_us: int) -> str:
        """An id nobody has used yet (bounded kinds fall back to a known one)."""
        if kind in _BOUNDED:
            return self.pick(kind, t_us)
        pool = self._ensure(kind, t_us)
        new = self._mint(kind, t_us)
        # New resources are the popular ones for a while: put them near the head of the pool.
        pool.insert(self.rng.randrange(0, min(len(pool), 8) + 1), new)
        if len(pool) > 4 * max(60, self.scale // 40):
            pool.pop()
        return new
