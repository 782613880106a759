"""Seed lines for fuzzing, per format of the registry, and the container envelopes around them.

Seeds are the golden files of the parser tests (tests/golden/*/<format>*.log) and the generated
sample logs. Formats come from the registry, so a format added later is fuzzed without a change
here: one with no seed file of its own name gets every seed line (it must still account for them).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from conflictradar.ingest.formats import names

TESTS = Path(__file__).resolve().parents[1]
GOLDEN = TESTS / "golden"
SAMPLES = TESTS.parent / "sample_logs" / "data"
SEED_LINES = 400  # per seed file: plenty of variety, small to hold
NGINX_MAIN = (
    "log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '"
    ' \'$status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"\';'
)
# Format specs beyond the registry's names: `nginx:` and `apache:` patterns build their parsers.
EXTRA_SPECS = {"nginx:" + NGINX_MAIN: ["nginx_main"], "apache:combined": ["combined"]}
ENVELOPES = ("docker", "cri", "compose")


def specs() -> list[str]:
    """Every `--format` value to fuzz: the registry's names plus the extra specs."""
    return [*names(), *EXTRA_SPECS]


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()][:SEED_LINES]


def _files() -> list[Path]:
    return (
        sorted(GOLDEN.glob("*/*.log"))
        + sorted(SAMPLES.glob("*.log*"))
        + sorted(SAMPLES.glob("*.jsonl"))
    )


@cache
def seeds(spec: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(header lines every file of `spec` starts with, seed lines) for a format spec."""
    stems = EXTRA_SPECS.get(spec, [spec.replace("-", "_")])
    mine = [f for f in _files() if any(f.stem.startswith(s) for s in stems)]
    if spec == "json":  # `json` is the generic format; other formats' stems start differently
        mine = [f for f in mine if f.stem == "json"]
    lines = [line for f in (mine or _files()) for line in _lines(f)]
    headers = tuple(line for line in lines if line.startswith(b"#"))[:8]
    return headers, tuple(line for line in lines if not line.startswith(b"#")) or (b"",)


def all_seeds() -> tuple[bytes, ...]:
    return tuple(line for spec in specs() for line in seeds(spec)[1][:50])


def wrap(envelope: str, line: bytes, n: int) -> bytes:
    """`line` as a container runtime would write it (n: its ordinal, for the time)."""
    ts = f"2025-11-20T08:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}000000Z"
    if envelope == "docker":
        text = json.dumps(line.decode("utf-8", errors="replace") + "\n")
        return b'{"log":' + text.encode() + b',"stream":"stdout","time":"' + ts.encode() + b'"}'
    if envelope == "cri":
        return ts.encode() + b" stdout F " + line
    return b"gateway-1  | " + line
