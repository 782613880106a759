"""`conflictradar demo` end to end: a real Slack-format receiver on 127.0.0.1 gets one FIRING
message per injected spike, its RESOLVED message, and nothing else.

The demo runs as a real process (backfill, watch, live traffic, dashboard). In `make test` it is
compressed: a spike every 120 s, a 1-hour backfill, and shorter `for` / `resolve_after` /
`group_wait` in its config, stopped once the first spike has resolved. The full version (the
default rules, one spike every 150 s, 10 minutes) runs with CONFLICTRADAR_DEMO_MINUTES=10.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.test_alerts_kit import Receiver, receiver

__all__ = ["receiver"]

ROOT = Path(__file__).resolve().parents[1]
FULL_MINUTES = float(os.environ.get("CONFLICTRADAR_DEMO_MINUTES", "0"))

COMPRESSED_CONFIG = """
[alerts]
group_wait = "5s"

[alerts.channels.demo-slack]
type = "slack"
url_env = "DEMO_SLACK_URL"

[[alerts.rules]]
name = "409 spike"
scope = "global"
min_count = 20
ratio = 2.0
for = "5s"
resolve_after = "5s"

[[alerts.rules]]
name = "409 spike per endpoint"
scope = "endpoint"
min_count = 10
ratio = 3.0
for = "5s"
resolve_after = "5s"
"""

FULL_CONFIG = """
[alerts.channels.demo-slack]
type = "slack"
url_env = "DEMO_SLACK_URL"
"""


@dataclass(frozen=True)
class Message:
    at: datetime
    status: str  # FIRING | RESOLVED
    text: str


def messages(r: Receiver, started: float, started_at: datetime) -> list[Message]:
    out = []
    for got in r.requests:
        text = got.json()["text"]
        status = re.match(r"\[(FIRING|RESOLVED)\]", text)
        assert status, f"not an alert message: {text}"
        at = datetime.fromtimestamp(started_at.timestamp() + got.at - started, UTC)
        out.append(Message(at, status.group(1), text))
    return out


def live_spikes(logs: Path, live_from: datetime) -> list[tuple[datetime, datetime, str]]:
    with (logs / "spikes.csv").open() as fh:
        rows = [
            (
                datetime.fromisoformat(r["start"].replace("Z", "+00:00")),
                datetime.fromisoformat(r["end"].replace("Z", "+00:00")),
                r["scope"],
            )
            for r in csv.DictReader(fh)
        ]
    return [s for s in rows if s[0] >= live_from]


def run_demo(
    tmp: Path, r: Receiver, config: str, every_s: float, backfill_h: float, stop_when: int,
    limit_s: float,
) -> tuple[list[Message], list[tuple[datetime, datetime, str]], str]:  # fmt: skip
    """Run the demo until `stop_when` RESOLVED messages (and 10 s more) or `limit_s`."""
    (tmp / "conflictradar.toml").write_text(config)
    env = dict(os.environ, DEMO_SLACK_URL=r.url, PYTHONPATH=str(ROOT))
    env.pop("CONFLICTRADAR_DB", None)
    started, started_at = time.monotonic(), datetime.now(UTC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "conflictradar", "demo", "--config", str(tmp / "conflictradar.toml"),
         "--duration", str(limit_s), "--spike-every", str(every_s), "--backfill", str(backfill_h)],
        cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        resolved_at = None
        while proc.poll() is None:
            resolved = sum(m.status == "RESOLVED" for m in messages(r, started, started_at))
            if resolved >= stop_when and resolved_at is None:
                resolved_at = time.monotonic()
            if resolved_at is not None and time.monotonic() - resolved_at > 10:
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.5)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    work = re.search(r"the data stays in (\S+)", err)
    assert work, err[-2000:]
    live = re.search(r"live traffic now flows", err)
    assert live, err[-2000:]
    # The backfill's spikes lie before the demo started; the live ones after.
    spikes = live_spikes(Path(work.group(1)) / "logs", started_at)
    return messages(r, started, started_at), spikes, err


def check(msgs: list[Message], spikes: list[tuple[datetime, datetime, str]]) -> None:
    """One FIRING per spike (after it starts, within two minutes of its end: the watcher may lag
    on a busy machine), then its RESOLVED; nothing else."""
    assert spikes, "no live spike was injected"
    summary = [(m.at.isoformat(timespec="seconds"), m.status, m.text[:160]) for m in msgs]
    assert len(msgs) == 2 * len(spikes), summary
    for (start, end, scope), firing, resolved in zip(spikes, msgs[0::2], msgs[1::2], strict=True):
        assert firing.status == "FIRING" and resolved.status == "RESOLVED", summary
        assert start <= firing.at <= end + timedelta(seconds=120), (start, end, summary)
        assert firing.at < resolved.at, summary
        if scope != "global":
            assert scope in firing.text, (scope, summary)


@pytest.mark.timeout(FULL_MINUTES * 60 + 900 if FULL_MINUTES else 900)
def test_demo_pages_once_per_spike_and_resolves(tmp_path: Path, receiver: Receiver) -> None:
    if FULL_MINUTES:
        msgs, spikes, _ = run_demo(tmp_path, receiver, FULL_CONFIG, 150, 2.0, 99,
                                   FULL_MINUTES * 60)  # fmt: skip
    else:
        msgs, spikes, _ = run_demo(tmp_path, receiver, COMPRESSED_CONFIG, 120, 1.0, 1, 330)
        spikes = spikes[:1]
    for m in msgs:
        print(m.at.isoformat(timespec="seconds"), m.status, m.text[:200])
    print("spikes:", [(a.isoformat(timespec="seconds"), b.isoformat(timespec="seconds"), s)
                      for a, b, s in spikes])  # fmt: skip
    check(msgs, spikes)
