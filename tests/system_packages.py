"""The Debian packages some tests need (a real browser, Prometheus, Alertmanager), installed when
missing: `make test` runs this once before pytest (one `apt-get update` for all of them), and each
test calls `ensure` again, so a test run on its own installs what it needs too. A file lock keeps
two pytest workers from running apt-get at once. Where installing is impossible (not root, no
apt-get, no network) the test skips with a loud reason; nothing here fails a run.

    python -m tests.system_packages
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

# binary -> (Debian packages that provide it, other names the binary goes by)
NEEDED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "chromium": (("chromium", "chromium-driver"), ("chromium-browser",)),
    "prometheus": (("prometheus",), ()),
    "prometheus-alertmanager": (("prometheus-alertmanager",), ("alertmanager",)),
}
LOCK = Path("/tmp/conflictradar-apt.lock")


def which(binary: str) -> str | None:
    _, aliases = NEEDED[binary]
    for name in (binary, *aliases):
        if found := shutil.which(name):
            return found
    return None


def _install(binaries: list[str]) -> str:
    """apt-get update + install the packages of `binaries`; '' or why it could not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "installing needs root and apt-get"
    packages = [p for b in binaries for p in NEEDED[b][0]]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian packages {' '.join(packages)} for the tests ...", file=sys.stderr)
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "apt-get timed out"
    return "" if done.returncode == 0 else f"apt-get failed: {done.stderr.strip()[-300:]}"


def ensure(*binaries: str) -> dict[str, str | None]:
    """Each binary's path (installing its package when missing), None where that failed."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one apt-get at a time, across pytest workers
        missing = [b for b in binaries if which(b) is None]
        if missing:
            why = _install(missing)
            if why:
                print(f"could not install {' '.join(missing)}: {why}", file=sys.stderr)
        return {b: which(b) for b in binaries}


def main() -> None:
    found = ensure(*NEEDED)
    for binary, path in found.items():
        note = path or "MISSING: its tests will skip with a loud reason"
        print(f"system package for tests: {binary}: {note}")


if __name__ == "__main__":
    main()
